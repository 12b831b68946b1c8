import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { LAMBDA_ENTRIES, type LambdaEntryName } from './entries.ts';

/**
 * How a Lambda entry file becomes its deployment asset: one esbuild bundle (`index.mjs`, ESM, the
 * AWS SDK inside) plus the files the bundled code reads at run time, laid out as in the repository.
 * The CDK construct (infra/constructs/pipeline-function.ts) and the aws-mode e2e both call
 * {@link bundleEntry}, so what the test runs is byte for byte what `cdk deploy` uploads.
 */

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE_FILE = 'index.mjs';
/** The Lambda handler setting for {@link BUNDLE_FILE}'s `handler` export. */
export const BUNDLE_HANDLER = 'index.handler';
/** The Node.js major the bundle targets: the function's runtime (NODEJS_24_X). */
export const BUNDLE_NODE_MAJOR = 24;

// A module that reads a file next to itself (`new URL('../analytics/sql/migrations/', import.meta.url)`)
// would, once bundled, resolve it next to index.mjs, outside the asset. Each such module is given its
// repository path as its URL instead, and the files it names are copied to the same place in the asset.
const OWN_URL = /\bimport\.meta\.url\b/g;
const RUNTIME_FILE = /new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;

/** Rewrites `import.meta.url` in the project's own modules and collects the files they read. */
function runtimeFilesPlugin(found: Set<string>): esbuild.Plugin {
  return {
    name: 'retail-pipeline-runtime-files',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        const relative = path.relative(REPO_ROOT, args.path);
        if (relative.startsWith('..') || relative.split(path.sep).includes('node_modules')) return undefined;
        const source = await fs.readFile(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return { contents: source, loader: 'ts' };
        for (const m of source.matchAll(RUNTIME_FILE)) {
          found.add(path.relative(REPO_ROOT, fileURLToPath(new URL(m[2] ?? '', `file://${args.path}`))));
        }
        const own = `new URL(${JSON.stringify(`./${relative.split(path.sep).join('/')}`)}, import.meta.url).href`;
        return { contents: source.replace(OWN_URL, own), loader: 'ts' };
      });
    },
  };
}

/** The esbuild options of one entry's bundle: the one place they are written. */
export function esbuildOptions(entry: LambdaEntryName, outdir: string, found = new Set<string>()) {
  return {
    entryPoints: [path.join(REPO_ROOT, LAMBDA_ENTRIES[entry])],
    outfile: path.join(outdir, BUNDLE_FILE),
    absWorkingDir: REPO_ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${BUNDLE_NODE_MAJOR}`,
    mainFields: ['module', 'main'],
    // CommonJS dependencies call require(); ESM output has none unless we make one.
    banner: {
      js: "import { createRequire as rpCreateRequire } from 'node:module'; const require = rpCreateRequire(import.meta.url);",
    },
    // No externals: Lambda runs the exact AWS SDK versions local mode was tested with, not the runtime's.
    external: [],
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'warning',
    plugins: [runtimeFilesPlugin(found)],
  } satisfies esbuild.BuildOptions;
}

export interface Bundle {
  entry: LambdaEntryName;
  dir: string;
  file: string;
  /** Repository-relative files and folders copied into the asset because the code reads them. */
  runtimeFiles: string[];
}

/** Builds one entry's asset into `outdir` (created; existing files are overwritten). */
export async function bundleEntry(entry: LambdaEntryName, outdir: string): Promise<Bundle> {
  const found = new Set<string>();
  await fs.mkdir(outdir, { recursive: true });
  await esbuild.build(esbuildOptions(entry, outdir, found));
  const runtimeFiles = [...found].sort();
  for (const relative of runtimeFiles) {
    await fs.cp(path.join(REPO_ROOT, relative), path.join(outdir, relative), { recursive: true });
  }
  return { entry, dir: outdir, file: path.join(outdir, BUNDLE_FILE), runtimeFiles };
}

// `node --import tsx infra/bundle.ts <entry> <outdir>`: what the CDK construct's local bundling runs
// (CDK bundles synchronously; esbuild's plugins need its asynchronous API, so it runs in a child).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entry, outdir] = process.argv.slice(2);
  if (!entry || !outdir || !(entry in LAMBDA_ENTRIES)) {
    console.error(`usage: infra/bundle.ts <${Object.keys(LAMBDA_ENTRIES).join('|')}> <outdir>`);
    process.exit(2);
  }
  await bundleEntry(entry as LambdaEntryName, outdir);
}
