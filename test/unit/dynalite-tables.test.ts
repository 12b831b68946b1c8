import { describe, expect, it } from 'vitest';
import { cacheTableDefinitions, type TableDefinitions } from '#local/emulators';

type Cb = (err: Error | null, value?: unknown) => void;

/** dynalite's table store as a map, each call answered when the test says (LevelDB is async). */
function definitions() {
  const data = new Map<string, unknown>();
  const queued: (() => void)[] = [];
  let reads = 0;
  const later = (f: () => void) => queued.push(f);
  const notFound = () => Object.assign(new Error('NotFound'), { name: 'NotFoundError' });
  const db: TableDefinitions = {
    get: (key: string, cb: Cb) => {
      reads++;
      // What LevelDB holds when the read starts, answered later.
      const value = data.has(key) ? structuredClone(data.get(key)) : undefined;
      later(() => (value !== undefined ? cb(null, value) : cb(notFound())));
    },
    put: (key: string, value: unknown, cb: Cb) =>
      later(() => {
        data.set(key, value);
        cb(null);
      }),
    del: (key: string, cb: Cb) =>
      later(() => {
        data.delete(key);
        cb(null);
      }),
    batch: (_ops: readonly unknown[], cb: Cb) => later(() => cb(null)),
  };
  /** Answers what is queued, in order or (LevelDB's thread pool may) the last call first. */
  const drain = async (lastFirst = false) => {
    while (queued.length > 0) ((lastFirst ? queued.pop() : queued.shift()) as () => void)();
    await new Promise((r) => process.nextTick(r));
  };
  return { db, data, drain, reads: () => reads };
}

const get = (db: TableDefinitions, key: string) =>
  new Promise<{ err: Error | null; value?: unknown }>((resolve) =>
    db.get(key, (err, value) => resolve({ err, value })),
  );
const call = (f: (cb: Cb) => void) => new Promise<void>((resolve) => f(() => resolve()));

describe("dynalite's table definitions in memory", () => {
  it('reads a definition from LevelDB once, and hands out copies', async () => {
    const t = definitions();
    t.data.set('retail', { TableName: 'retail', TableStatus: 'ACTIVE' });
    cacheTableDefinitions(t.db);
    const first = get(t.db, 'retail');
    await t.drain();
    expect((await first).value).toEqual({ TableName: 'retail', TableStatus: 'ACTIVE' });
    const a = (await get(t.db, 'retail')).value as { TableStatus: string };
    a.TableStatus = 'DELETING';
    expect((await get(t.db, 'retail')).value).toEqual({ TableName: 'retail', TableStatus: 'ACTIVE' });
    expect(t.reads()).toBe(1);
  });

  it('answers a table that is not there from LevelDB every time', async () => {
    const t = definitions();
    cacheTableDefinitions(t.db);
    for (let i = 0; i < 2; i++) {
      const r = get(t.db, 'missing');
      await t.drain();
      expect((await r).err?.name).toBe('NotFoundError');
    }
    expect(t.reads()).toBe(2);
  });

  it('sees every write: a put, a delete, and a read that overlapped a write is not kept', async () => {
    const t = definitions();
    t.data.set('retail', { TableStatus: 'CREATING' });
    cacheTableDefinitions(t.db);
    // A read in flight when a write starts answers what LevelDB answers, but is not remembered,
    // even when its answer comes after the write's.
    const during = get(t.db, 'retail');
    const put = call((cb) => t.db.put('retail', { TableStatus: 'ACTIVE' }, cb));
    await t.drain(true);
    await put;
    expect((await during).value).toEqual({ TableStatus: 'CREATING' });
    const after = get(t.db, 'retail');
    await t.drain();
    expect((await after).value).toEqual({ TableStatus: 'ACTIVE' });
    expect((await get(t.db, 'retail')).value).toEqual({ TableStatus: 'ACTIVE' });
    expect(t.reads()).toBe(2);
    const del = call((cb) => t.db.del('retail', cb));
    await t.drain();
    await del;
    const gone = get(t.db, 'retail');
    await t.drain();
    expect((await gone).err?.name).toBe('NotFoundError');
  });
});
