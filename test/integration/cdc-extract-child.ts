/**
 * A child process for the kill -9 test: one extract run against the given source and bucket that
 * announces `marker-written` once its completion marker is durable, then waits to be killed before it
 * can advance the watermarks.
 */
import { createClients } from '#adapters/clients';
import { extractOnce } from '#cdc/totesys/extract';
import { createSourcePool, readChanges } from '#cdc/totesys/source';
import { s3Zone } from '#cdc/zone';

const { CDC_CHILD_SOURCE, CDC_CHILD_S3, CDC_CHILD_BUCKET, CDC_CHILD_REGION } = process.env;
if (!CDC_CHILD_SOURCE || !CDC_CHILD_S3 || !CDC_CHILD_BUCKET || !CDC_CHILD_REGION) {
  throw new Error('CDC_CHILD_SOURCE, CDC_CHILD_S3, CDC_CHILD_BUCKET and CDC_CHILD_REGION are required');
}
const pool = createSourcePool(CDC_CHILD_SOURCE);
const clients = createClients({ region: CDC_CHILD_REGION, endpoints: { s3: CDC_CHILD_S3 }, local: true });
await extractOnce({
  read: (bounds) => readChanges(pool, bounds),
  zone: s3Zone(clients.s3, CDC_CHILD_BUCKET),
  overlapMicros: 60_000_000n,
  hooks: {
    afterMarker: (runId) =>
      new Promise<void>(() => {
        process.stdout.write(`marker-written ${runId}\n`);
      }),
  },
});
