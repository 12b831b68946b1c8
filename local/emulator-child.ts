/**
 * Entry of the emulator process: kinesalite, dynalite and s3rver run here, on the machine's other
 * core, while the parent runs the API, the consumers and the loader. Talks to its parent over IPC.
 */

import type { ChildMessage, ParentMessage } from './emulator-process.ts';
import { startDynamo, startKinesis, startS3 } from './emulators.ts';

const send = (message: ChildMessage) => process.send?.(message);

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.RP_EMULATOR_SPEC ?? '{}') as {
    host: string;
    ports: { kinesis: number; dynamodb: number; s3: number };
    directories: { kinesis: string; dynamodb: string; s3: string };
    buckets: string[];
  };
  // Ctrl-C reaches the whole process group; the parent decides when we stop (after Firehose flushed).
  process.on('SIGINT', () => {});
  const [kinesis, dynamodb, s3] = await Promise.all([
    startKinesis({ host: spec.host, port: spec.ports.kinesis, directory: spec.directories.kinesis }),
    startDynamo({ host: spec.host, port: spec.ports.dynamodb, directory: spec.directories.dynamodb }),
    startS3({ host: spec.host, port: spec.ports.s3, directory: spec.directories.s3, buckets: spec.buckets }),
  ]);
  s3.onObjectCreated((bucket, key) => send({ type: 's3-object-created', bucket, key }));

  let stopping = false;
  const stop = (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    void Promise.allSettled([kinesis.stop(), dynamodb.stop(), s3.stop()]).then((results) => {
      const failed = results.filter((r) => r.status === 'rejected');
      send({ type: 'stopped', errors: failed.map((f) => String((f as PromiseRejectedResult).reason)) });
      process.exit(failed.length > 0 ? 1 : exitCode);
    });
  };
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') stop(0);
  });
  // The parent died (even by kill -9): close the databases cleanly and go, leaving no orphan.
  process.on('disconnect', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  send({ type: 'ready', urls: { kinesis: kinesis.url, dynamodb: dynamodb.url, s3: s3.url } });
}

main().catch((err: unknown) => {
  send({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
