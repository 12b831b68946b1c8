/** Byte-level helpers of the CSV typer, and the interner of the strings it meets. */

/**
 * Bytes [s, e) as a string, one char per byte. Node's Buffer#latin1Slice (what toString('latin1')
 * calls after checking its arguments): undocumented but stable since Node 0.x, and the cheapest
 * way to turn ASCII bytes into a string; the byte path only calls it on printable ASCII.
 */
export const latin1 = (buf: Buffer, s: number, e: number): string =>
  (buf as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(s, e);

export const isDigit = (b: number) => b >= 0x30 && b <= 0x39;

/** Whether bytes [s, e) spell `text` (ASCII). */
export function sameAscii(buf: Buffer, s: number, e: number, text: string): boolean {
  if (e - s !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[s + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Digits [s, e) as a number (the caller checked they are digits). */
export function digitsValue(buf: Buffer, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + ((buf[i] as number) - 0x30);
  return n;
}

export function allDigits(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (!isDigit(buf[i] as number)) return false;
  return true;
}

/** FNV-1a over the length, the first 8 and the last 4 units (bytes of ASCII, or UTF-16 units). */
function sampleHash(buf: Buffer, s: number, e: number, len: number): number {
  let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
  const head = Math.min(e, s + 8);
  for (let i = s; i < head; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  for (let i = Math.max(head, e - 4); i < e; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  return h;
}

function sampleHashString(value: string): number {
  const len = value.length;
  let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
  const head = Math.min(len, 8);
  for (let i = 0; i < head; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  for (let i = Math.max(head, len - 4); i < len; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * Distinct strings and a small integer id for each, found from bytes without making a string: a
 * file repeats a few thousand stock codes and descriptions half a million times, and turning bytes
 * into a string costs more than hashing them. Open addressing over FNV-1a hashes of the bytes (or
 * of the UTF-16 units of a string, the same for ASCII).
 */
export class Interner {
  private slots = new Int32Array(1 << 12);
  private readonly hashes: number[] = [];
  readonly values: string[] = [];

  private find(h: number, same: (value: string) => boolean): number {
    const mask = this.slots.length - 1;
    for (let k = h & mask; ; k = (k + 1) & mask) {
      const slot = this.slots[k] as number;
      if (slot === 0) return -1 - k;
      const id = slot - 1;
      if (this.hashes[id] === h && same(this.values[id] as string)) return id;
    }
  }

  private add(slot: number, h: number, value: string): number {
    const id = this.values.length;
    this.values.push(value);
    this.hashes.push(h);
    this.slots[slot] = id + 1;
    if (this.values.length * 2 > this.slots.length) {
      const next = new Int32Array(this.slots.length * 2);
      const mask = next.length - 1;
      for (let i = 0; i < this.values.length; i++) {
        let k = (this.hashes[i] as number) & mask;
        while (next[k] !== 0) k = (k + 1) & mask;
        next[k] = i + 1;
      }
      this.slots = next;
    }
    return id;
  }

  /**
   * The id of printable-ASCII bytes [s, e). The hash reads the length and at most 12 bytes (the
   * first 8, the last 4): values that share them only make a probe longer, the comparison is exact.
   */
  bytes(buf: Buffer, s: number, e: number): number {
    const h = sampleHash(buf, s, e, e - s);
    const mask = this.slots.length - 1;
    for (let k = h & mask; ; k = (k + 1) & mask) {
      const slot = this.slots[k] as number;
      if (slot === 0) return this.add(k, h, latin1(buf, s, e));
      const id = slot - 1;
      if (this.hashes[id] === h && sameAscii(buf, s, e, this.values[id] as string)) return id;
    }
  }

  /** The id of a string. */
  string(value: string): number {
    const h = sampleHashString(value);
    const found = this.find(h, (v) => v === value);
    return found >= 0 ? found : this.add(-1 - found, h, value);
  }
}
