import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type ParentMessage = { type: 'stop' };
export type ChildMessage =
  | { type: 'ready'; urls: EmulatorUrls }
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
  ports: { kinesis: number; dynamodb: number; s3: number };
  directories: { kinesis: string; dynamodb: string; s3: string };
  buckets: string[];
}

export interface EmulatorProcess {
  urls: EmulatorUrls;
  pid: number;
  onObjectCreated(listener: (bucket: string, key: string) => void): void;
  /** Asks the child to close its databases and exit; kills it if it does not within the timeout. */
  stop(timeoutMs?: number): Promise<void>;
}

export class EmulatorProcessError extends Error {
  override name = 'EmulatorProcessError';
}

const childEntry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'emulator-child.ts');
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Starts kinesalite, dynalite and s3rver in one child process (the machine's other core). */
export function startEmulatorProcess(opts: EmulatorProcessOptions): Promise<EmulatorProcess> {
  const child: ChildProcess = fork(childEntry, [], {
    execArgv: ['--import', tsxLoader],
    env: { ...process.env, RP_EMULATOR_SPEC: JSON.stringify(opts) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const listeners: Array<(bucket: string, key: string) => void> = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  return new Promise((resolve, reject) => {
    const onEarlyExit = (code: number | null) =>
      reject(new EmulatorProcessError(`emulator process exited with code ${code} before it was ready`));
    child.once('exit', onEarlyExit);
    child.on('message', (message: ChildMessage) => {
      switch (message.type) {
        case 'ready':
          child.off('exit', onEarlyExit);
          resolve({
            urls: message.urls,
            pid: child.pid as number,
            onObjectCreated: (listener) => listeners.push(listener),
            async stop(timeoutMs = 10_000) {
              if (child.exitCode !== null || child.signalCode !== null) return;
              if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
              const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
              const code = await exited;
              clearTimeout(timer);
              if (code !== 0) throw new EmulatorProcessError(`emulator process stopped with code ${code}`);
            },
          });
          break;
        case 'failed':
          reject(new EmulatorProcessError(`emulators failed to start: ${message.error}`));
          break;
        case 's3-object-created':
          for (const listener of listeners) listener(message.bucket, message.key);
          break;
        case 'stopped':
          break;
      }
    });
  });
}
