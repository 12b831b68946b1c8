/**
 * Snappy compression (the raw format Parquet's SNAPPY codec uses) for the lake's lean writer
 * (./invoice-lines-parquet.ts), written for speed on large pages: the output goes straight into one
 * preallocated array, and the input is taken in blocks of 64 KiB, each with its own hash table of
 * block offsets, as the reference implementation does (google/snappy, format_description.txt).
 * hyparquet-writer's compressor, which the lean writer used before, made a method call per output
 * byte: it was about a third of the thread's CPU for the real file (docs/lake.md).
 *
 * Decoded by any Snappy reader; the tests check it against hyparquet's decoder.
 */

/** Input bytes per block: copies never reach back past the block's start (offsets fit 16 bits). */
const BLOCK = 1 << 16;
const MAX_HASH_BITS = 14;
/** Bytes at a block's end that the match finder leaves to the last literal (it reads 4 bytes ahead). */
const INPUT_MARGIN = 15;
/** Offsets within the current block, by hash of the 4 bytes there; reused by every call. */
const table = new Uint16Array(1 << MAX_HASH_BITS);

/** The most bytes Snappy can take for `n` input bytes (the reference's MaxCompressedLength). */
export function maxCompressedLength(n: number): number {
  return 32 + n + Math.floor(n / 6);
}

export function snappyCompress(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(maxCompressedLength(input.length));
  let op = 0;
  // The uncompressed length, as a little-endian base-128 varint.
  let n = input.length;
  while (n >= 0x80) {
    out[op++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[op++] = n;
  for (let start = 0; start < input.length; start += BLOCK) {
    op = compressBlock(input, start, Math.min(input.length, start + BLOCK), out, op);
  }
  return out.subarray(0, op);
}

function load32(a: Uint8Array, p: number): number {
  return (
    (a[p] as number) |
    ((a[p + 1] as number) << 8) |
    ((a[p + 2] as number) << 16) |
    ((a[p + 3] as number) << 24)
  );
}

function compressBlock(input: Uint8Array, base: number, end: number, out: Uint8Array, at: number): number {
  let op = at;
  if (end - base < INPUT_MARGIN) return emitLiteral(input, base, end - base, out, op);
  let bits = 8;
  while (1 << bits < end - base && bits < MAX_HASH_BITS) bits++;
  const shift = 32 - bits;
  table.fill(0, 0, 1 << bits);
  const ipLimit = end - INPUT_MARGIN;
  let ip = base + 1;
  let nextEmit = base;
  let nextHash = Math.imul(load32(input, ip), 0x1e35a7bd) >>> shift;
  for (;;) {
    // Look for a 4-byte match, striding further the longer none is found (incompressible data).
    let skip = 32;
    let nextIp = ip;
    let candidate = base;
    do {
      ip = nextIp;
      const hash = nextHash;
      nextIp = ip + (skip++ >>> 5);
      if (nextIp > ipLimit) return emitLiteral(input, nextEmit, end - nextEmit, out, op);
      nextHash = Math.imul(load32(input, nextIp), 0x1e35a7bd) >>> shift;
      candidate = base + (table[hash] as number);
      table[hash] = ip - base;
    } while (load32(input, ip) !== load32(input, candidate));
    op = emitLiteral(input, nextEmit, ip - nextEmit, out, op);
    // Emit copies as long as the next 4 bytes match again.
    do {
      const from = ip;
      let matched = 4;
      while (ip + matched + 4 <= end && load32(input, ip + matched) === load32(input, candidate + matched)) {
        matched += 4;
      }
      while (ip + matched < end && input[ip + matched] === input[candidate + matched]) matched++;
      ip += matched;
      op = emitCopy(from - candidate, matched, out, op);
      nextEmit = ip;
      if (ip >= ipLimit) {
        return nextEmit < end ? emitLiteral(input, nextEmit, end - nextEmit, out, op) : op;
      }
      table[Math.imul(load32(input, ip - 1), 0x1e35a7bd) >>> shift] = ip - 1 - base;
      const hash = Math.imul(load32(input, ip), 0x1e35a7bd) >>> shift;
      candidate = base + (table[hash] as number);
      table[hash] = ip - base;
    } while (load32(input, ip) === load32(input, candidate));
    ip++;
    nextHash = Math.imul(load32(input, ip), 0x1e35a7bd) >>> shift;
  }
}

function emitLiteral(input: Uint8Array, from: number, len: number, out: Uint8Array, at: number): number {
  let op = at;
  if (len <= 0) return op;
  const n = len - 1;
  if (n < 60) out[op++] = n << 2;
  else if (n < 0x100) {
    out[op++] = 60 << 2;
    out[op++] = n;
  } else if (n < 0x10000) {
    out[op++] = 61 << 2;
    out[op++] = n & 0xff;
    out[op++] = n >>> 8;
  } else {
    out[op++] = 62 << 2;
    out[op++] = n & 0xff;
    out[op++] = (n >>> 8) & 0xff;
    out[op++] = n >>> 16;
  }
  if (len < 16) for (let i = 0; i < len; i++) out[op++] = input[from + i] as number;
  else {
    out.set(input.subarray(from, from + len), op);
    op += len;
  }
  return op;
}

function emitCopy(offset: number, length: number, out: Uint8Array, at: number): number {
  let op = at;
  let len = length;
  // Copies of 64 while more than 67 remain; then one of 60 if more than 64 remain (none left < 4).
  while (len >= 68) {
    op = copy2(offset, 64, out, op);
    len -= 64;
  }
  if (len > 64) {
    op = copy2(offset, 60, out, op);
    len -= 60;
  }
  if (len < 12 && offset < 2048) {
    out[op++] = 1 | ((len - 4) << 2) | ((offset >>> 8) << 5);
    out[op++] = offset & 0xff;
    return op;
  }
  return copy2(offset, len, out, op);
}

function copy2(offset: number, len: number, out: Uint8Array, at: number): number {
  out[at] = 2 | ((len - 1) << 2);
  out[at + 1] = offset & 0xff;
  out[at + 2] = offset >>> 8;
  return at + 3;
}
