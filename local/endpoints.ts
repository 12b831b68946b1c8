import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

/**
 * `<data-dir>/endpoints.json`: how scripts and tools find a running local stack.
 * The top-level keys are a contract (kinesis, dynamodb, s3, firehose, postgres, totesys, redshiftData, api);
 * add, never rename.
 */
export const endpointsSchema = z.object({
  kinesis: z.string(),
  dynamodb: z.string(),
  s3: z.string(),
  firehose: z.string(),
  /** libpq connection string (postgresql://user:password@host:port/database). */
  postgres: z.string(),
  /** The totesys operational database (the CDC source), same server; absent in files of older versions. */
  totesys: z.string().optional(),
  /**
   * The local Redshift Data API (local/redshift-data.ts) over the same PostgreSQL: the aws-mode
   * warehouse adapter's endpoint. Absent in files of older versions.
   */
  redshiftData: z.string().optional(),
  api: z.string().optional(),
  dashboard: z.string().optional(),
  region: z.string(),
  names: z.object({
    stream: z.string(),
    table: z.string(),
    bucket: z.string(),
    deliveryStream: z.string(),
    database: z.string(),
    /** The Redshift Serverless workgroup the local Data API answers for (the CDK app's). */
    workgroup: z.string().optional(),
  }),
  pid: z.number().int(),
  startedAt: z.string(),
});

export type Endpoints = z.infer<typeof endpointsSchema>;

export function endpointsPath(dataDir: string): string {
  return path.join(dataDir, 'endpoints.json');
}

export async function writeEndpoints(dataDir: string, endpoints: Endpoints): Promise<void> {
  const file = endpointsPath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(endpoints, null, 2)}\n`);
  await fs.rename(tmp, file);
}

export class StackNotRunningError extends Error {
  override name = 'StackNotRunningError';
}

/** Reads endpoints.json; a clear error when the stack was never started there. */
export async function readEndpoints(dataDir: string): Promise<Endpoints> {
  const file = endpointsPath(dataDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (cause) {
    throw new StackNotRunningError(
      `no local stack found: ${file} does not exist (start it with: npm start)`,
      {
        cause,
      },
    );
  }
  return endpointsSchema.parse(JSON.parse(text));
}
