import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CopyObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { glob } from 'tinyglobby';
import { createClients } from '#adapters/clients';
import { loadConfig } from '#adapters/config';
import { type Cell, stdoutTable } from '#adapters/terminal';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createManifest, type ManifestProgress } from '#batch/loader/manifest';
import { LANDING_PREFIX } from '#batch/loader/objects';
import { reasonKey, rejectedReportKey } from '#batch/loader/quarantine';
import { sleep } from '#core/resilience';
import { readEndpoints } from '#local/endpoints';

interface LoadOptions {
  dataDir?: string;
  waitTimeout: string;
}

export class LoadInputError extends Error {
  override name = 'LoadInputError';
}

const PROGRESS_FROM_BYTES = 8 * 2 ** 20;
/** What the command waits for: an outcome, final or not (a failed load is retried later). */
const SETTLED = new Set(['loaded', 'quarantined', 'failed']);

interface Dropped {
  source: string;
  key: string;
  etag: string;
}

/** Local files named by paths, directories (their CSV files) or globs. */
export async function resolveLocalFiles(patterns: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of patterns) {
    const stat = await fs.stat(p).catch(() => undefined);
    if (stat?.isFile()) files.push(path.resolve(p));
    else if (stat?.isDirectory()) {
      files.push(
        ...(await glob(['**/*.csv', '**/*.csv.gz', '**/*.txt', '**/*.txt.gz'], { cwd: p, absolute: true })),
      );
    } else {
      const hits = await glob(p, { absolute: true });
      if (hits.length === 0) throw new LoadInputError(`no file matches ${p}`);
      files.push(...hits);
    }
  }
  return [...new Set(files)].sort();
}

async function upload(s3: S3Client, bucket: string, file: string): Promise<Dropped> {
  const key = `${LANDING_PREFIX}${path.basename(file)}`;
  const size = (await fs.stat(file)).size;
  const bar =
    size >= PROGRESS_FROM_BYTES && process.stderr.isTTY
      ? new SingleBar({
          format: `${path.basename(file)} [{bar}] {percentage}% {value}/{total} MiB`,
          stream: process.stderr,
        })
      : undefined;
  bar?.start(Math.ceil(size / 2 ** 20), 0);
  const up = new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: createReadStream(file) } });
  up.on('httpUploadProgress', (p) => bar?.update(Math.floor((p.loaded ?? 0) / 2 ** 20)));
  const out = await up.done();
  bar?.stop();
  return { source: file, key, etag: (out.ETag ?? '').replaceAll('"', '') };
}

async function copyFromS3(s3: S3Client, bucket: string, uri: string): Promise<Dropped> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m?.[1] || !m[2]) throw new LoadInputError(`not an s3://bucket/key URI: ${uri}`);
  const key = `${LANDING_PREFIX}${path.posix.basename(m[2])}`;
  const out = await s3.send(
    new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: `${m[1]}/${encodeURIComponent(m[2])}` }),
  );
  return { source: uri, key, etag: (out.CopyObjectResult?.ETag ?? '').replaceAll('"', '') };
}

async function waitFor(
  warehouse: Warehouse,
  drop: Dropped,
  deadline: number,
): Promise<ManifestProgress | undefined> {
  const manifest = createManifest(warehouse);
  for (;;) {
    const row = await manifest.progress(drop.key, drop.etag);
    if (row && SETTLED.has(row.status)) return row;
    if (Date.now() > deadline) return row;
    await sleep(250);
  }
}

export function registerLoadCommands(program: Command): void {
  program
    .command('load')
    .description(
      "drop CSV files (plain or .gz) into the running stack's S3 landing/ and wait for the warehouse load",
    )
    .argument('<sources...>', 'files, directories, globs or s3://bucket/key')
    .option('--data-dir <dir>', 'data directory of the running stack (default: $RP_DATA_DIR or .data)')
    .option('--wait-timeout <seconds>', 'how long to wait for each load', '600')
    .action(async (sources: string[], opts: LoadOptions) => {
      const config = loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
      const endpoints = await readEndpoints(config.dataDir);
      const clients = createClients({
        region: endpoints.region,
        endpoints: { s3: endpoints.s3 },
        local: true,
      });
      const warehouse = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 1 });
      const bucket = endpoints.names.bucket;
      try {
        const s3Uris = sources.filter((s) => s.startsWith('s3://'));
        const files = await resolveLocalFiles(sources.filter((s) => !s.startsWith('s3://')));
        const drops: Dropped[] = [];
        for (const uri of s3Uris) drops.push(await copyFromS3(clients.s3, bucket, uri));
        for (const file of files) drops.push(await upload(clients.s3, bucket, file));
        const deadline = Date.now() + Number(opts.waitTimeout) * 1000;
        const rows: Cell[][] = [];
        let problems = 0;
        for (const drop of drops) {
          const row = await waitFor(warehouse, drop, deadline);
          const status = row?.status ?? 'not picked up';
          if (status !== 'loaded') problems++;
          const notes = [
            row?.extra_columns ? `extra columns ignored: ${JSON.parse(row.extra_columns).join(', ')}` : '',
            row?.error ?? '',
            status === 'quarantined' ? `see s3://${bucket}/${reasonKey(drop.key)}` : '',
            Number(row?.rows_rejected ?? 0) > 0
              ? `rejected rows: s3://${bucket}/${rejectedReportKey(drop.key)}`
              : '',
          ].filter(Boolean);
          rows.push([
            path.basename(drop.source),
            status,
            row?.rows_read ?? '',
            row?.rows_loaded ?? '',
            row?.rows_new ?? '',
            row?.rows_rejected ?? '',
            row?.seconds ?? '',
            notes.join('\n'),
          ]);
        }
        const table = stdoutTable({
          head: ['file', 'status', 'read', 'loaded', 'new', 'rejected', 'seconds', 'notes'],
          rows,
        });
        process.stdout.write(`${table}\n`);
        if (problems > 0) process.exitCode = 2;
      } finally {
        await warehouse.close();
        clients.destroy();
      }
    });
}
