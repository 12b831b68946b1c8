/**
 * Entry of one emulator process (kinesalite, dynalite or s3rver). Each emulator gets its own process
 * so the three and the parent (API, consumers, loader) spread over the machine's cores; a busy
 * dynalite no longer delays Kinesis reads. Talks to its parent over IPC.
 */

import { errorMessage } from '#core/resilience';
import type { ChildMessage, EmulatorSpec, ParentMessage } from './emulator-process.ts';
import { type RunningEmulator, startDynamo, startKinesis, startS3 } from './emulators.ts';

const send = (message: ChildMessage) => process.send?.(message);

async function start(spec: EmulatorSpec): Promise<RunningEmulator> {
  const opts = { host: spec.host, port: spec.port, directory: spec.directory };
  switch (spec.service) {
    case 'kinesis':
      return startKinesis(opts);
    case 'dynamodb':
      return startDynamo(opts);
    case 's3': {
      const s3 = await startS3({ ...opts, buckets: spec.buckets });
      s3.onObjectCreated((bucket, key) => send({ type: 's3-object-created', bucket, key }));
      return s3;
    }
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.RP_EMULATOR_SPEC ?? '{}') as EmulatorSpec;
  // Ctrl-C reaches the whole process group; the parent decides when we stop (after Firehose flushed).
  process.on('SIGINT', () => {});
  const emulator = await start(spec);

  let stopping = false;
  // dynalite answers a request still in flight when its database has just closed by throwing from a
  // callback: while stopping that is expected, not a crash to print.
  process.on('uncaughtException', (err) => {
    if (stopping && err.message === 'Database is closed') return;
    console.error(err);
    process.exit(1);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    emulator.stop().then(
      () => {
        send({ type: 'stopped', errors: [] });
        process.exit(0);
      },
      (err: unknown) => {
        send({ type: 'stopped', errors: [String(err)] });
        process.exit(1);
      },
    );
  };
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') stop();
  });
  // The parent died (even by kill -9): close the database cleanly and go, leaving no orphan.
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  send({ type: 'ready', url: emulator.url });
}

main().catch((err: unknown) => {
  send({ type: 'failed', error: errorMessage(err, { name: false }) });
  process.exit(1);
});
