import fs from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import dynalite from 'dynalite';
import kinesalite from 'kinesalite';
import S3rver from 's3rver';

/** A running emulator: its URL and how to stop it (closing its database cleanly). */
export interface RunningEmulator {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmulatorOptions {
  host: string;
  port: number;
  /** Persist under this directory; absent = in memory (unit-speed tests). */
  directory?: string;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.closeAllConnections?.();
    server.close((err) => (err ? reject(err) : resolve()));
  });
}

function urlOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** kinesalite, LevelDB-backed when a directory is given. */
export async function startKinesis(opts: EmulatorOptions): Promise<RunningEmulator> {
  if (opts.directory) await fs.mkdir(opts.directory, { recursive: true });
  const server = kinesalite({
    ...(opts.directory ? { path: opts.directory } : {}),
    createStreamMs: 0,
    deleteStreamMs: 0,
    updateStreamMs: 0,
    shardLimit: 100,
  }) as unknown as Server;
  const port = await listen(server, opts.host, opts.port);
  return { url: urlOf(opts.host, port), port, stop: () => close(server) };
}

/** dynalite, LevelDB-backed when a directory is given. */
export async function startDynamo(opts: EmulatorOptions): Promise<RunningEmulator> {
  if (opts.directory) await fs.mkdir(path.dirname(opts.directory), { recursive: true });
  const server = dynalite({
    ...(opts.directory ? { path: opts.directory } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  }) as unknown as Server;
  const port = await listen(server, opts.host, opts.port);
  return { url: urlOf(opts.host, port), port, stop: () => close(server) };
}

export interface RunningS3 extends RunningEmulator {
  /** Called for every object created (in-process S3 event notifications). */
  onObjectCreated(listener: (bucket: string, key: string) => void): void;
}

interface S3rverEvent {
  Records: Array<{ eventName: string; s3: { bucket: { name: string }; object: { key: string } } }>;
}

/** s3rver; it always persists to a directory (a temp one when none is given). */
export async function startS3(opts: EmulatorOptions & { buckets: string[] }): Promise<RunningS3> {
  const directory = opts.directory ?? (await fs.mkdtemp(path.join(os.tmpdir(), 's3rver-')));
  await fs.mkdir(directory, { recursive: true });
  const server = new S3rver({
    address: opts.host,
    port: opts.port,
    silent: true,
    directory,
    configureBuckets: opts.buckets.map((name) => ({ name, configs: [] })),
  });
  const listeners: Array<(bucket: string, key: string) => void> = [];
  (server as unknown as NodeJS.EventEmitter).on('event', (event: S3rverEvent) => {
    for (const record of event.Records) {
      if (!record.eventName.startsWith('ObjectCreated')) continue;
      // s3rver reports the raw key (AWS would URL-encode it).
      for (const listener of listeners) listener(record.s3.bucket.name, record.s3.object.key);
    }
  });
  const address = await server.run();
  return {
    url: urlOf(opts.host, address.port),
    port: address.port,
    onObjectCreated: (listener) => listeners.push(listener),
    stop: () => server.close(),
  };
}
