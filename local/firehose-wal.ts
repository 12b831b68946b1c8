import { randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { acquirePidLock } from './pid-lock.ts';

/**
 * Write-ahead log segments of the local Firehose. One segment holds the records of one future S3 object.
 *
 * A segment is a sequence of frames, one per acknowledged call:
 *   magic u32 | crc32 u32 (of everything after it) | payloadBytes u32 | recordCount u32 | arrivalMs f64 | payload
 * The payload is the calls' record data concatenated, which is exactly what the S3 object body holds,
 * so record boundaries need not be stored. A crash mid-append leaves a torn last frame, detected by
 * length or checksum and cut off: that call was never acknowledged.
 */
export const FRAME_MAGIC = 0x46485731; // 'FHW1'
export const FRAME_HEADER_BYTES = 24;

const SEGMENT_NAME = /^(\d{12})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.wal$/;

export function segmentFileName(seq: number, uuid: string): string {
  return `${String(seq).padStart(12, '0')}-${uuid}.wal`;
}

export function parseSegmentFileName(name: string): { seq: number; uuid: string } | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (!match?.[1] || !match[2]) return undefined;
  return { seq: Number(match[1]), uuid: match[2] };
}

/** One frame holding the records of one call; the payload is a view into the returned buffer. */
export function encodeFrame(
  records: readonly Buffer[],
  arrivalMs: number,
): { frame: Buffer; payload: Buffer } {
  let payloadBytes = 0;
  for (const r of records) payloadBytes += r.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  frame.writeUInt32BE(FRAME_MAGIC, 0);
  frame.writeUInt32BE(payloadBytes, 8);
  frame.writeUInt32BE(records.length, 12);
  frame.writeDoubleBE(arrivalMs, 16);
  let offset = FRAME_HEADER_BYTES;
  for (const r of records) offset += r.copy(frame, offset);
  frame.writeUInt32BE(crc32(frame.subarray(8)), 4);
  return { frame, payload: frame.subarray(FRAME_HEADER_BYTES) };
}

export interface Frame {
  arrivalMs: number;
  records: number;
  payload: Buffer;
}

export interface ParsedSegment {
  frames: Frame[];
  /** Bytes up to the end of the last intact frame. */
  validBytes: number;
  /** True when bytes after the last intact frame were found (an unacknowledged, torn append). */
  torn: boolean;
}

export function parseSegment(buf: Buffer): ParsedSegment {
  const frames: Frame[] = [];
  let offset = 0;
  while (offset + FRAME_HEADER_BYTES <= buf.length) {
    if (buf.readUInt32BE(offset) !== FRAME_MAGIC) break;
    const payloadBytes = buf.readUInt32BE(offset + 8);
    const end = offset + FRAME_HEADER_BYTES + payloadBytes;
    if (end > buf.length) break;
    if (crc32(buf.subarray(offset + 8, end)) !== buf.readUInt32BE(offset + 4)) break;
    frames.push({
      arrivalMs: buf.readDoubleBE(offset + 16),
      records: buf.readUInt32BE(offset + 12),
      payload: buf.subarray(offset + FRAME_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { frames, validBytes: offset, torn: offset < buf.length };
}

/** A segment's records, held in memory from first append until its object is in S3. */
export interface Segment {
  seq: number;
  uuid: string;
  file: string;
  /** The payloads while held in memory; undefined once released, then read back from the file. */
  chunks: Buffer[] | undefined;
  bytes: number;
  records: number;
  /** Arrival of the oldest record: Firehose names the object after it. */
  firstArrivalMs: number;
}

export interface OpenSegment extends Segment {
  handle: FileHandle;
  fileBytes: number;
}

export async function createSegment(dir: string, seq: number): Promise<OpenSegment> {
  const uuid = randomUUID();
  const file = path.join(dir, segmentFileName(seq, uuid));
  const handle = await fs.open(file, 'wx');
  // The new directory entry must survive a crash too, or its synced frames would vanish with it.
  await syncDirectory(dir);
  return { seq, uuid, file, chunks: [], bytes: 0, records: 0, firstArrivalMs: 0, handle, fileBytes: 0 };
}

/** Appends and syncs; on return the bytes are durable. */
export async function appendDurably(segment: OpenSegment, buf: Buffer): Promise<void> {
  let written = 0;
  while (written < buf.length) {
    const { bytesWritten } = await segment.handle.write(
      buf,
      written,
      buf.length - written,
      segment.fileBytes + written,
    );
    written += bytesWritten;
  }
  await segment.handle.datasync();
  segment.fileBytes += buf.length;
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface RecoveredSegments {
  segments: Segment[];
  nextSeq: number;
  /** Segment files whose torn tail was cut off (the unacknowledged append of a crash). */
  truncated: string[];
}

/** The S3 object body of a sealed segment file: its intact frames' payloads, concatenated. */
export async function readSegmentPayload(file: string): Promise<Buffer> {
  return Buffer.concat(parseSegment(await fs.readFile(file)).frames.map((f) => f.payload));
}

/**
 * Reads the segments a previous run left in `dir`, oldest first; empty ones are removed. Their payloads
 * are not kept in memory (a long S3 outage can leave a large backlog): delivery reads them back.
 */
export async function recoverSegments(dir: string): Promise<RecoveredSegments> {
  await fs.mkdir(dir, { recursive: true });
  const named = (await fs.readdir(dir))
    .map((name) => ({ name, parsed: parseSegmentFileName(name) }))
    .filter((n): n is { name: string; parsed: { seq: number; uuid: string } } => n.parsed !== undefined)
    .sort((a, b) => a.parsed.seq - b.parsed.seq);
  const segments: Segment[] = [];
  const truncated: string[] = [];
  let nextSeq = 1;
  for (const { name, parsed } of named) {
    nextSeq = Math.max(nextSeq, parsed.seq + 1);
    const file = path.join(dir, name);
    const content = parseSegment(await fs.readFile(file));
    if (content.torn) {
      await fs.truncate(file, content.validBytes);
      truncated.push(file);
    }
    const first = content.frames[0];
    if (!first) {
      await fs.rm(file, { force: true });
      continue;
    }
    segments.push({
      seq: parsed.seq,
      uuid: parsed.uuid,
      file,
      chunks: undefined,
      bytes: content.frames.reduce((sum, f) => sum + f.payload.length, 0),
      records: content.frames.reduce((sum, f) => sum + f.records, 0),
      firstArrivalMs: first.arrivalMs,
    });
  }
  return { segments, nextSeq, truncated };
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * Firehose's key layout: `<prefix>YYYY/MM/dd/HH/<stream>-<version>-YYYY-MM-dd-HH-mm-ss-<uuid>.gz`, UTC,
 * from the approximate arrival time of the oldest record in the object. The uuid is the segment's, so a
 * segment delivered again after a crash overwrites its own object instead of duplicating it.
 */
export function objectKey(
  prefix: string,
  stream: string,
  arrivalMs: number,
  uuid: string,
  version = 1,
): string {
  const d = new Date(arrivalMs);
  const [y, mo, da, h, mi, s] = [
    d.getUTCFullYear(),
    pad(d.getUTCMonth() + 1),
    pad(d.getUTCDate()),
    pad(d.getUTCHours()),
    pad(d.getUTCMinutes()),
    pad(d.getUTCSeconds()),
  ];
  return `${prefix}${y}/${mo}/${da}/${h}/${stream}-${version}-${y}-${mo}-${da}-${h}-${mi}-${s}-${uuid}.gz`;
}

export class WalInUseError extends Error {
  override name = 'WalInUseError';
}

/**
 * Claims `dir` for this instance. Two instances on one WAL would deliver and delete each other's
 * segments, losing records appended to a segment already removed. A lock left by a dead process
 * (a crash) is taken over. Returns the release function.
 */
export async function lockWal(dir: string): Promise<() => Promise<void>> {
  const file = path.join(path.resolve(dir), 'LOCK');
  return acquirePidLock(file, (holder) =>
    holder === 'this process'
      ? new WalInUseError(`WAL ${path.resolve(dir)} is in use by this process`)
      : new WalInUseError(
          `WAL ${path.resolve(dir)} is in use by process ${holder} (remove ${file} if that is wrong)`,
        ),
  );
}
