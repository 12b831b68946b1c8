import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  encodeFrame,
  lockWal,
  objectKey,
  parseSegment,
  parseSegmentFileName,
  readSegmentPayload,
  recoverSegments,
  segmentFileName,
  WalInUseError,
} from '#local/firehose-wal';

const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const recs = (...s: string[]) => s.map((x) => Buffer.from(x));

describe('WAL frames', () => {
  it('round-trips frames with their arrival time and record count', () => {
    const a = encodeFrame(recs('{"a":1}\n', '{"a":2}\n'), 1_700_000_000_123);
    const b = encodeFrame(recs('{"b":1}\n'), 1_700_000_001_000);

    const parsed = parseSegment(Buffer.concat([a.frame, b.frame]));

    expect(parsed.torn).toBe(false);
    expect(parsed.validBytes).toBe(a.frame.length + b.frame.length);
    expect(parsed.frames.map((f) => [f.arrivalMs, f.records, f.payload.toString()])).toEqual([
      [1_700_000_000_123, 2, '{"a":1}\n{"a":2}\n'],
      [1_700_000_001_000, 1, '{"b":1}\n'],
    ]);
    expect(a.payload.toString()).toBe('{"a":1}\n{"a":2}\n');
  });

  it.each([
    ['a frame cut short', (f: Buffer) => f.subarray(0, f.length - 3)],
    ['a header cut short', (f: Buffer) => f.subarray(0, 10)],
    ['a flipped payload byte', (f: Buffer) => Buffer.from(f).fill(0x41, f.length - 1)],
    ['zeros instead of a frame', (f: Buffer) => Buffer.alloc(f.length)],
  ])('keeps the intact frames and reports a torn tail on %s', (_, damage) => {
    const good = encodeFrame(recs('good\n'), 1).frame;
    const last = encodeFrame(recs('torn\n'), 2).frame;

    const parsed = parseSegment(Buffer.concat([good, damage(last)]));

    expect(parsed.torn).toBe(true);
    expect(parsed.validBytes).toBe(good.length);
    expect(parsed.frames.map((f) => f.payload.toString())).toEqual(['good\n']);
  });

  it('names segments so they sort by sequence and parse back', () => {
    const name = segmentFileName(42, UUID);

    expect(name).toBe(`000000000042-${UUID}.wal`);
    expect(parseSegmentFileName(name)).toEqual({ seq: 42, uuid: UUID });
    expect(parseSegmentFileName('000000000042-nope.wal')).toBeUndefined();
    expect(parseSegmentFileName(`${name}.tmp`)).toBeUndefined();
  });
});

describe('recoverSegments', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'firehose-wal-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('returns leftover segments oldest first, cuts torn tails and removes empty files', async () => {
    const u2 = '11111111-2222-4333-8444-555555555555';
    const u3 = '21111111-2222-4333-8444-555555555555';
    const torn = encodeFrame(recs('lost\n'), 30).frame.subarray(0, 20);
    await fs.writeFile(path.join(dir, segmentFileName(10, UUID)), encodeFrame(recs('x\n', 'y\n'), 10).frame);
    await fs.writeFile(
      path.join(dir, segmentFileName(2, u2)),
      Buffer.concat([encodeFrame(recs('a\n'), 20).frame, encodeFrame(recs('b\n'), 21).frame, torn]),
    );
    await fs.writeFile(path.join(dir, segmentFileName(3, u3)), torn);
    await fs.writeFile(path.join(dir, 'unrelated.txt'), 'keep me');

    const { segments, nextSeq, truncated } = await recoverSegments(dir);

    expect(segments.map((s) => [s.seq, s.uuid, s.records, s.bytes, s.firstArrivalMs])).toEqual([
      [2, u2, 2, 4, 20],
      [10, UUID, 2, 4, 10],
    ]);
    expect((await readSegmentPayload(path.join(dir, segmentFileName(2, u2)))).toString()).toBe('a\nb\n');
    expect(nextSeq).toBe(11);
    expect(truncated.map((f) => path.basename(f)).sort()).toEqual(
      [segmentFileName(2, u2), segmentFileName(3, u3)].sort(),
    );
    expect((await fs.readdir(dir)).sort()).toEqual(
      [segmentFileName(10, UUID), segmentFileName(2, u2), 'unrelated.txt'].sort(),
    );
    const rewritten = parseSegment(await fs.readFile(path.join(dir, segmentFileName(2, u2))));
    expect(rewritten.torn).toBe(false);
  });

  it('creates the directory and starts at sequence 1 when there is nothing', async () => {
    const fresh = path.join(dir, 'a', 'b');

    const result = await recoverSegments(fresh);

    expect(result).toEqual({ segments: [], nextSeq: 1, truncated: [] });
    expect((await fs.stat(fresh)).isDirectory()).toBe(true);
  });
});

describe('lockWal', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'firehose-lock-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses a second holder in this process until released', async () => {
    const release = await lockWal(dir);

    await expect(lockWal(dir)).rejects.toBeInstanceOf(WalInUseError);
    await release();
    const again = await lockWal(dir);
    await again();
  });

  it('refuses a lock held by another live process and takes over one left by a dead process', async () => {
    await fs.writeFile(path.join(dir, 'LOCK'), String(process.ppid));
    await expect(lockWal(dir)).rejects.toThrow(/in use by process/);

    await fs.writeFile(path.join(dir, 'LOCK'), '2147483646');
    const release = await lockWal(dir);

    expect(await fs.readFile(path.join(dir, 'LOCK'), 'utf8')).toBe(String(process.pid));
    await release();
  });
});

describe('objectKey', () => {
  it("follows Firehose's layout in UTC from the oldest record's arrival", () => {
    const at = Date.UTC(2011, 11, 9, 7, 5, 3, 999);

    expect(objectKey('archive/', 'invoice-lines', at, UUID)).toBe(
      `archive/2011/12/09/07/invoice-lines-1-2011-12-09-07-05-03-${UUID}.gz`,
    );
    expect(objectKey('', 's', Date.UTC(2024, 0, 1, 23, 59, 59), UUID)).toBe(
      `2024/01/01/23/s-1-2024-01-01-23-59-59-${UUID}.gz`,
    );
  });
});
