import fs from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
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

type Callback<T = unknown> = (err: Error | null, value?: T) => void;

/** The callback face of dynalite's table-definition store (one LevelDB key per table). */
export interface TableDefinitions {
  get(key: string, cb: Callback): void;
  put(key: string, value: unknown, cb: Callback): void;
  del(key: string, cb: Callback): void;
  batch(ops: readonly unknown[], cb: Callback): void;
}

/**
 * Keeps dynalite's table definitions in memory. dynalite reads the table's definition from LevelDB
 * for every request, and again for every item of a BatchWriteItem: half of its LevelDB reads under
 * the stream path's load, each a round trip through libuv's thread pool (docs/benchmarks.md, issue
 * 14 (c)). Definitions change only on CreateTable, UpdateTable and DeleteTable. A read is answered
 * from memory (a copy: dynalite's actions modify what they read) once LevelDB answered it with no
 * write of any definition begun or ended meanwhile; every write empties the memory, before it
 * starts and when it ends. Item data, indexes and what is on disk are untouched.
 */
export function cacheTableDefinitions(tables: TableDefinitions): void {
  const known = new Map<string, unknown>();
  let writes = 0;
  let epoch = 0;
  const { get, put, del, batch } = tables;
  const written =
    <A extends unknown[]>(write: (...args: [...A, Callback]) => void) =>
    (...args: [...A, Callback]) => {
      const cb = args.pop() as Callback;
      writes++;
      epoch++;
      known.clear();
      write.call(tables, ...(args as unknown as A), (err: Error | null, value?: unknown) => {
        writes--;
        epoch++;
        known.clear();
        cb(err, value);
      });
    };
  tables.put = written(put);
  tables.del = written(del);
  tables.batch = written(batch);
  tables.get = (key, cb) => {
    if (known.has(key)) {
      const copy = structuredClone(known.get(key));
      process.nextTick(cb, null, copy);
      return;
    }
    const since = epoch;
    get.call(tables, key, (err, value) => {
      if (!err && value !== undefined && writes === 0 && epoch === since)
        known.set(key, structuredClone(value));
      cb(err, value);
    });
  };
}

interface DynaliteStores {
  create(options: unknown): { tableDb: TableDefinitions };
}
/** dynalite's store factory, wrapped once so that every store it creates caches its tables. */
let dynaliteStores: DynaliteStores | undefined;
function cachingDynaliteTables(): void {
  if (dynaliteStores) return;
  const stores = createRequire(import.meta.url)('dynalite/db') as DynaliteStores;
  dynaliteStores = stores;
  const create = stores.create;
  stores.create = (options) => {
    const store = create(options);
    cacheTableDefinitions(store.tableDb);
    return store;
  };
}

/** dynalite, LevelDB-backed when a directory is given. */
export async function startDynamo(opts: EmulatorOptions): Promise<RunningEmulator> {
  if (opts.directory) await fs.mkdir(path.dirname(opts.directory), { recursive: true });
  cachingDynaliteTables();
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
