import { snappyUncompress } from 'hyparquet/src/snappy.js';
import { describe, expect, it } from 'vitest';
import { maxCompressedLength, snappyCompress } from '#lake/snappy';

/** hyparquet's own Snappy decoder (the reader every lake file meets). */
function roundTrip(input: Uint8Array): Uint8Array {
  const packed = snappyCompress(input);
  expect(packed.byteLength).toBeLessThanOrEqual(maxCompressedLength(input.byteLength));
  const out = new Uint8Array(input.byteLength);
  snappyUncompress(packed, out);
  expect(Buffer.from(out).equals(Buffer.from(input))).toBe(true);
  return packed;
}

let seed = 11;
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
  return seed;
};
/** The generator's high bits: its low bits repeat every 2^k values. */
const randomByte = () => (random() >>> 16) & 0xff;

describe('the lake snappy compressor', () => {
  it('reads back every short input, below and at the match finder margin', () => {
    for (let n = 0; n <= 40; n++) {
      roundTrip(Uint8Array.from({ length: n }, () => randomByte()));
      roundTrip(new Uint8Array(n).fill(7));
    }
  });

  it('reads back incompressible bytes across block edges, with literals of every length size', () => {
    for (const n of [59, 60, 61, 255, 256, 257, 65_535, 65_536, 65_537, 200_001]) {
      const input = Uint8Array.from({ length: n }, () => randomByte());
      expect(roundTrip(input).byteLength).toBeGreaterThanOrEqual(n);
    }
  });

  it('reads back long runs (copies of 64, 60 and the rest) and compresses them', () => {
    for (const n of [67, 68, 69, 124, 125, 128, 1 << 16, (1 << 20) + 3]) {
      const packed = roundTrip(new Uint8Array(n));
      if (n >= 1 << 16) expect(packed.byteLength).toBeLessThan(n / 20);
    }
  });

  it('reads back columns like the lake writes: little-endian numbers with repeats near and far', () => {
    for (const rows of [1000, 70_000, 1 << 16]) {
      const values = new BigInt64Array(rows);
      const prices = [1250n, 2950n, 850n, 16_950n, 420n, 1_650n];
      for (let i = 0; i < rows; i++) {
        values[i] = random() % 9 === 0 ? BigInt(random()) : (prices[random() % prices.length] as bigint);
      }
      const bytes = new Uint8Array(values.buffer);
      expect(roundTrip(bytes).byteLength).toBeLessThan(bytes.byteLength / 2);
      // Offsets past 2,048 bytes (the 3-byte copy) and just below 64 KiB.
      const far = new Uint8Array(3 * (1 << 16));
      far.set(bytes.subarray(0, 60_000), 0);
      far.set(bytes.subarray(0, 60_000), 62_000);
      far.set(bytes.subarray(500, 3000), 140_000);
      far.set(bytes.subarray(500, 3000), 143_100);
      roundTrip(far);
    }
  });
});
