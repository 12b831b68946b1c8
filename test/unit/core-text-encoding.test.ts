import { describe, expect, it } from 'vitest';
import {
  createSourceDecoder,
  detectEncoding,
  EncodingDetector,
  encodingOf,
  LATIN1_HINT,
  TextEncodingError,
  Utf8Scanner,
  verdictOf,
} from '#core/text-encoding';

const bytes = (...b: number[]) => Uint8Array.from(b);
const utf8 = (s: string) => new TextEncoder().encode(s);

/** Splits `data` at the given offsets. */
const split = (data: Uint8Array, at: number[]) =>
  [0, ...at, data.length].slice(1).map((end, i) => data.subarray([0, ...at][i] as number, end));

function scanned(chunks: Uint8Array[], complete = true) {
  const scan = new Utf8Scanner();
  for (const c of chunks) scan.push(c);
  if (complete) scan.end();
  return scan;
}

/** A small deterministic PRNG so a failure can be replayed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Utf8Scanner', () => {
  it.each([
    ['ASCII', bytes(0x41, 0x0a, 0x42), true],
    ['£ in UTF-8', utf8('£40.00'), true],
    ['a 4-byte character', utf8('a😀b'), true],
    ['Latin-1 £', bytes(0x20, 0xa3, 0x34), false],
    ['overlong /', bytes(0xc0, 0xaf), false],
    ['overlong 3-byte', bytes(0xe0, 0x80, 0xaf), false],
    ['a surrogate', bytes(0xed, 0xa0, 0x80), false],
    ['above U+10FFFF', bytes(0xf4, 0x90, 0x80, 0x80), false],
    ['a lone continuation byte', bytes(0x80), false],
    ['a character cut at the end', bytes(0x41, 0xe2, 0x82), false],
  ])('%s: valid = %s, as the WHATWG decoder says', (_, data, valid) => {
    expect(scanned([data]).fault === undefined).toBe(valid);
    const strict = () => new TextDecoder('utf-8', { fatal: true }).decode(data);
    if (valid) expect(strict).not.toThrow();
    else expect(strict).toThrow();
  });

  it('agrees with the WHATWG decoder on random bytes split at random places', () => {
    const random = prng(13);
    const alphabet = [
      0x0a, 0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xa3, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
      0xf5, 0xff,
    ];
    const disagreements: string[] = [];
    for (let round = 0; round < 3_000; round++) {
      const data = Uint8Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        random() < 0.3 ? 0x41 : (alphabet[Math.floor(random() * alphabet.length)] as number),
      );
      const cuts = [...new Set(Array.from({ length: 3 }, () => Math.floor(random() * data.length)))]
        .filter((c) => c > 0)
        .sort((a, b) => a - b);
      let valid = true;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(data);
      } catch {
        valid = false;
      }
      if ((scanned(split(data, cuts)).fault === undefined) !== valid)
        disagreements.push(`bytes ${[...data]} cut at ${cuts}: WHATWG says valid = ${valid}`);
    }
    expect(disagreements).toEqual([]);
  });

  it('names the line and the byte that starts the broken sequence, across chunks', () => {
    const data = new Uint8Array([...utf8('InvoiceNo\r\nrow 2\r\nrow 3 caf'), 0xe9, ...utf8(' x\r\n')]);
    const scan = scanned(split(data, [5, 20, 25]));
    expect(scan.fault).toEqual({ line: 3, offset: data.indexOf(0xe9), byte: 0xe9 });
    expect(scan.line).toBe(4);
  });
});

describe('detectEncoding: one rule for every input path', () => {
  it('UTF-8 when valid, Latin-1 when nothing reads as UTF-8, mixed when both', () => {
    expect(detectEncoding(utf8('CAFÉ MUG, plain'))).toBe('utf8');
    expect(detectEncoding(Buffer.from('CAFÉ MUG, £1', 'latin1'))).toBe('latin1');
    const mixed = new Uint8Array([...utf8('CAFÉ\n'), ...Buffer.from('£1\n', 'latin1')]);
    expect(detectEncoding(mixed)).toBe('mixed');
  });

  it('a character cut at the end of a sample is fine, not at the end of the whole input', () => {
    const cut = utf8('abcdefgh É').subarray(0, 10);
    expect(detectEncoding(cut)).toBe('utf8');
    expect(detectEncoding(cut, true)).toBe('latin1');
  });

  it('encodingOf refuses a mixed file with the line of its first fault', () => {
    const scan = scanned([utf8('h\nCAFÉ\nok\n'), Buffer.from('£1\n', 'latin1')], false);
    expect(() => encodingOf('f.csv', scan)).toThrow(TextEncodingError);
    expect(() => encodingOf('f.csv', scan)).toThrow(/^f\.csv:4: .*line 2 is UTF-8.*--encoding latin1/);
  });
});

describe('EncodingDetector: the rule as the bytes arrive (the loader)', () => {
  /** The detector's verdict on chunks: its encoding at the end, or 'mixed' when it threw. */
  function detected(chunks: Uint8Array[]): string {
    const d = new EncodingDetector('f.csv', 'a hint');
    try {
      for (const c of chunks) d.push(c);
      return d.end();
    } catch (e) {
      if (e instanceof TextEncodingError) return 'mixed';
      throw e;
    }
  }

  it('decides as verdictOf does on the whole input, for random bytes split at random places', () => {
    const random = prng(7);
    const alphabet = [0x0a, 0x41, 0x80, 0xa3, 0xa9, 0xbf, 0xc2, 0xc3, 0xe2, 0xf0, 0xff];
    const disagreements: string[] = [];
    for (let round = 0; round < 3_000; round++) {
      const data = Uint8Array.from({ length: 1 + Math.floor(random() * 16) }, () =>
        random() < 0.5 ? 0x41 : (alphabet[Math.floor(random() * alphabet.length)] as number),
      );
      const cuts = [...new Set(Array.from({ length: 3 }, () => Math.floor(random() * data.length)))]
        .filter((c) => c > 0)
        .sort((a, b) => a - b);
      const whole = verdictOf(scanned([data]));
      const got = detected(split(data, cuts));
      if (got !== whole) disagreements.push(`bytes ${[...data]} cut at ${cuts}: ${got}, whole ${whole}`);
    }
    expect(disagreements).toEqual([]);
  });

  it('reads on as Latin-1 after a fault in ASCII text, and refuses a later UTF-8 character at the fault', () => {
    const d = new EncodingDetector('f.csv', 'a hint');
    d.push(utf8('h\nplain\n'));
    expect(d.encoding).toBe('utf8');
    d.push(Buffer.from('£1\n', 'latin1'));
    expect(d.encoding).toBe('latin1');
    expect(() => d.push(utf8('CAFÉ\n'))).toThrow(
      /^f\.csv:3: not valid UTF-8 \(byte 0xA3 at byte 8\), yet line 4 is UTF-8.*; a hint$/,
    );
  });

  it('utf8Only refuses the first byte that is not UTF-8, without reading on', () => {
    const d = new EncodingDetector('f.csv', 'a hint', true);
    d.push(utf8('h\nCAFÉ\n'));
    expect(() => d.push(Buffer.from('£1\n', 'latin1'))).toThrow(
      /^f\.csv:3: not valid UTF-8 \(byte 0xA3 at byte 8\); a hint$/,
    );
  });

  it('seek: bytes checked elsewhere are skipped, lines and offsets stay those of the whole input', () => {
    const d = new EncodingDetector('f.csv', 'a hint');
    d.seek(40, 1_000);
    d.push(utf8('CAFÉ\n'));
    expect(() => d.push(Buffer.from('£\n', 'latin1'))).toThrow(
      /^f\.csv:41: not valid UTF-8 \(byte 0xA3 at byte 1006\), yet line 40/,
    );
  });
});

describe('createSourceDecoder', () => {
  it('UTF-8: characters split across chunks come out whole', () => {
    const data = utf8('Gift Voucher £40.00 😀\n');
    for (let cut = 1; cut < data.length; cut++) {
      const d = createSourceDecoder('utf8', 'f.csv');
      expect(d.decode(data.subarray(0, cut)) + d.decode(data.subarray(cut)) + d.end()).toBe(
        'Gift Voucher £40.00 😀\n',
      );
    }
  });

  it('UTF-8: an invalid byte throws with file, line and hint; nothing becomes U+FFFD', () => {
    const d = createSourceDecoder('utf8', 'data/retail.csv');
    expect(d.decode(utf8('h\nr2\n'))).toBe('h\nr2\n');
    const error = (() => {
      try {
        d.decode(Buffer.from('r3\nGift Voucher £40.00\n', 'latin1'));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(TextEncodingError);
    expect(error).toMatchObject({ file: 'data/retail.csv', line: 4, hint: LATIN1_HINT });
    expect((error as Error).message).toBe(
      `data/retail.csv:4: not valid UTF-8 (byte 0xA3 at byte 21); ${LATIN1_HINT}`,
    );
  });

  it('UTF-8: input that ends inside a character throws at end()', () => {
    const d = createSourceDecoder('utf8', 'f.csv');
    expect(d.decode(bytes(0x41, 0xc2))).toBe('A');
    expect(() => d.end()).toThrow(TextEncodingError);
  });

  it('Latin-1 is ISO-8859-1 for all 256 bytes (not windows-1252), as Buffer and the loader read it', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const d = createSourceDecoder('latin1', 'f.csv');
    expect(d.decode(all) + d.end()).toBe(Buffer.from(all).toString('latin1'));
    expect(d.decode(bytes(0x80))).toBe('\u0080');
  });
});
