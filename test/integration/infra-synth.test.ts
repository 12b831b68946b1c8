import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { STACK_NAME } from '../../infra/build.ts';
import { BUNDLE_FILE, bundleEntry } from '../../infra/bundle.ts';
import { REPO_ROOT } from '../../infra/constructs/pipeline-function.ts';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES, type LambdaEntryName } from '../../infra/entries.ts';

const run = promisify(execFile);
const missing = Object.values(LAMBDA_ENTRIES).filter((entry) => !fs.existsSync(path.join(REPO_ROOT, entry)));
if (missing.length > 0)
  console.warn(`skipping the bundled synth: entry files not written yet: ${missing.join(', ')}`);

const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-infra-synth-'));
afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

/** Every file under `dir`, relative and sorted. */
const tree = (dir: string): string[] =>
  fs.statSync(dir).isDirectory()
    ? (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
        .filter((d) => d.isFile())
        .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
        .sort()
    : [''];

type Resource = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };

describe('cdk synth with esbuild bundling', () => {
  it.skipIf(missing.length > 0)(
    'bundles every entry file into a loadable ESM handler with the files it reads, as infra/bundle.ts builds it, and passes cdk-nag',
    async () => {
      // The pinned CLI, exactly as `npm run synth` / `npm run deploy` run it (cdk.json app, no Docker, no network).
      const cli = path.join(REPO_ROOT, 'node_modules/aws-cdk/bin/cdk');
      await run(
        process.execPath,
        [cli, 'synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', outdir],
        {
          cwd: REPO_ROOT,
          env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true' },
          maxBuffer: 64 * 1024 * 1024,
          timeout: 280_000,
        },
      );

      const template = JSON.parse(
        fs.readFileSync(path.join(outdir, `${STACK_NAME}.template.json`), 'utf8'),
      ) as {
        Resources: Record<string, Resource>;
      };
      const functions = Object.values(template.Resources).filter(
        (r) => r.Type === 'AWS::Lambda::Function' && r.Metadata?.[ENTRY_METADATA_KEY],
      );
      expect(functions.map((f) => f.Metadata?.[ENTRY_METADATA_KEY]).sort()).toEqual(
        Object.values(LAMBDA_ENTRIES).sort(),
      );

      for (const fn of functions) {
        const entry = String(fn.Metadata?.[ENTRY_METADATA_KEY]);
        // Asset metadata points from the function to its bundle directory in the cloud assembly.
        const assetDir = path.join(outdir, String(fn.Metadata?.['aws:asset:path']));
        const bundle = path.join(assetDir, BUNDLE_FILE);
        expect(fs.existsSync(bundle), `${entry} -> ${bundle}`).toBe(true);
        const size = fs.statSync(bundle).size;
        expect(size, entry).toBeLessThan(50 * 1024 * 1024);
        console.info(`bundle ${entry}: ${(size / 1024).toFixed(0)} KiB`);

        // The asset is infra/bundle.ts's output, the bundle the aws-mode e2e runs: the same files, the
        // ones the code reads at run time (the loaders' migrations) included where the code looks for them.
        // (Bytes are not compared: others editing this checkout during the minute-long synth change them.)
        const name = Object.entries(LAMBDA_ENTRIES).find(([, e]) => e === entry)?.[0] as LambdaEntryName;
        const direct = await bundleEntry(name, path.join(outdir, `direct-${name}`));
        expect(tree(assetDir), entry).toEqual(tree(direct.dir));
        for (const relative of direct.runtimeFiles) {
          expect(tree(path.join(assetDir, relative)), `${entry}: ${relative}`).toEqual(
            tree(path.join(REPO_ROOT, relative)),
          );
        }
        if (name === 'loader' || name === 'totesysLoad')
          expect(direct.runtimeFiles, entry).toContain('analytics/sql/migrations');

        // Importing the bundle runs its module scope (config, client construction) the way a cold start does.
        const probe = `import(${JSON.stringify(`file://${bundle}`)}).then((m) => {
          if (typeof m.handler !== 'function') { console.error('handler is ' + typeof m.handler); process.exit(3); }
        })`;
        await run(process.execPath, ['--input-type=module', '-e', probe], {
          cwd: assetDir,
          timeout: 30_000,
          env: {
            PATH: process.env.PATH ?? '',
            AWS_REGION: 'us-east-1',
            AWS_ACCESS_KEY_ID: 'synth-probe',
            AWS_SECRET_ACCESS_KEY: 'synth-probe',
            RP_MODE: 'aws',
            RP_LOG_LEVEL: 'silent',
            RP_REDSHIFT_WORKGROUP: 'probe',
            RP_REDSHIFT_DATABASE: 'retail',
            RP_STREAM_NAME: 'probe',
            RP_TABLE_NAME: 'probe',
            RP_BUCKET: 'probe-bucket',
            RP_DELIVERY_STREAM: 'probe',
          },
        });
      }

      const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as {
        pluginReports: { pluginName: string; violations: { ruleName: string; severity: string }[] }[];
      };
      const findings = report.pluginReports.flatMap((p) =>
        p.violations
          .filter((v) => v.severity === 'error' || v.severity === 'warning')
          .map((v) => `${p.pluginName} ${v.ruleName}`),
      );
      expect(findings).toEqual([]);
    },
    300_000,
  );
});
