import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type EmulatorService = 'kinesis' | 'dynamodb' | 's3';

export interface EmulatorSpec {
  service: EmulatorService;
  host: string;
  port: number;
  directory: string;
  buckets: string[];
}

export type ParentMessage = { type: 'stop' };
export type ChildMessage =
  | { type: 'ready'; url: string }
  | { type: 'failed'; error: string }
  | { type: 's3-object-created'; bucket: string; key: string }
  | { type: 'stopped'; errors: string[] };

export interface EmulatorUrls {
  kinesis: string;
  dynamodb: string;
  s3: string;
}

export interface EmulatorProcessOptions {
  host: string;
  ports: Record<EmulatorService, number>;
  directories: Record<EmulatorService, string>;
  buckets: string[];
}

export interface EmulatorProcesses {
  urls: EmulatorUrls;
  pids: number[];
  onObjectCreated(listener: (bucket: string, key: string) => void): void;
  /** Asks each child to close its database and exit; kills one that does not within the timeout. */
  stop(timeoutMs?: number): Promise<void>;
}

export class EmulatorProcessError extends Error {
  override name = 'EmulatorProcessError';
}

const childEntry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'emulator-child.ts');
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface EmulatorChild {
  url: string;
  process: ChildProcess;
  stop(timeoutMs: number): Promise<void>;
}

/** One emulator in a child process of its own (the stack starts three: startEmulatorProcesses). */
export function startEmulatorProcess(
  spec: EmulatorSpec,
  onObject: (bucket: string, key: string) => void = () => {},
): Promise<EmulatorChild> {
  const child = fork(childEntry, [], {
    execArgv: ['--import', tsxLoader],
    env: { ...process.env, RP_EMULATOR_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onEarlyExit = (code: number | null) =>
      reject(
        new EmulatorProcessError(`${spec.service} emulator exited with code ${code} before it was ready`),
      );
    child.once('exit', onEarlyExit);
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') {
        child.off('exit', onEarlyExit);
        resolve({
          url: message.url,
          process: child,
          async stop(timeoutMs) {
            if (child.exitCode !== null || child.signalCode !== null) return;
            if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
            const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
            const code = await exited;
            clearTimeout(timer);
            if (code !== 0)
              throw new EmulatorProcessError(`${spec.service} emulator stopped with code ${code}`);
          },
        });
      } else if (message.type === 'failed') {
        reject(new EmulatorProcessError(`${spec.service} emulator failed to start: ${message.error}`));
      } else if (message.type === 's3-object-created') {
        onObject(message.bucket, message.key);
      }
    });
  });
}

/** Starts kinesalite, dynalite and s3rver, one child process each. */
export async function startEmulatorProcesses(opts: EmulatorProcessOptions): Promise<EmulatorProcesses> {
  const listeners: Array<(bucket: string, key: string) => void> = [];
  const onObject = (bucket: string, key: string) => {
    for (const listener of listeners) listener(bucket, key);
  };
  const services: EmulatorService[] = ['kinesis', 'dynamodb', 's3'];
  const started = await Promise.allSettled(
    services.map((service) =>
      startEmulatorProcess(
        {
          service,
          host: opts.host,
          port: opts.ports[service],
          directory: opts.directories[service],
          buckets: opts.buckets,
        },
        onObject,
      ),
    ),
  );
  const children = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stopAll = async (timeoutMs = 10_000) => {
    const results = await Promise.allSettled(children.map((c) => c.stop(timeoutMs)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw new EmulatorProcessError(failed.map((f) => String(f.reason)).join('; '));
  };
  const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await stopAll().catch(() => {});
    throw failure.reason;
  }
  const [kinesis, dynamodb, s3] = children as [EmulatorChild, EmulatorChild, EmulatorChild];
  return {
    urls: { kinesis: kinesis.url, dynamodb: dynamodb.url, s3: s3.url },
    pids: children.map((c) => c.process.pid as number),
    onObjectCreated: (listener) => listeners.push(listener),
    stop: stopAll,
  };
}
