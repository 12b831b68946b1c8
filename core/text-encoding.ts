import type { SourceEncoding } from './rules.ts';

/**
 * The one text decoder for source files, whatever reads them (replay, the loader): strict
 * UTF-8 or Latin-1, never a silent U+FFFD. A file is decoded correctly or refused with its file,
 * line and a hint. Pure: it works on byte chunks handed to it and does no I/O.
 */

/** One of the encodings a source file may be in (`RULES.encodings`, `--encoding`). */
export type TextEncoding = SourceEncoding;

/** What to tell a user whose file is not the UTF-8 it was read as. */
export const LATIN1_HINT = 'if the file is Latin-1 (ISO-8859-1), give --encoding latin1';

/** A source file whose bytes are not text in the encoding it is read as. */
export class TextEncodingError extends Error {
  override name = 'TextEncodingError';
  constructor(
    readonly file: string,
    /** 1-based physical line (the header is line 1) holding the first offending byte. */
    readonly line: number,
    readonly detail: string,
    readonly hint: string = LATIN1_HINT,
    options?: ErrorOptions,
  ) {
    super(`${file}:${line}: ${detail}; ${hint}`, options);
  }
}

/** The first byte that breaks UTF-8. */
export interface Utf8Fault {
  line: number;
  /** 0-based position in the whole input of the byte that starts the broken sequence. */
  offset: number;
  /** That byte's value. */
  byte: number;
}

const LF = 0x0a;

/**
 * Streaming UTF-8 validation with the WHATWG decoder's rules (no overlong forms, no surrogates,
 * nothing above U+10FFFF), across chunk boundaries, counting lines. It goes on past a fault so it
 * can also tell whether the input holds real UTF-8 sequences elsewhere (a file mixing encodings).
 */
export class Utf8Scanner {
  /** The line the next byte is on. */
  line = 1;
  /** The first fault, if any. */
  fault: Utf8Fault | undefined;
  /** Line of the first well-formed multi-byte sequence, if any. */
  firstMultiByteLine: number | undefined;
  private offset = 0;
  private needed = 0;
  private seen = 0;
  private lower = 0x80;
  private upper = 0xbf;
  private lead = 0;
  private leadOffset = 0;

  /** Scans the next chunk. Returns the chunk index of the first fault it holds, else -1. */
  push(chunk: Uint8Array): number {
    let found = -1;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const b = chunk[i] as number;
      if (this.needed === 0) {
        if (b < 0x80) {
          if (b === LF) this.line++;
          continue;
        }
        this.lead = b;
        this.leadOffset = this.offset + i;
        if (b >= 0xc2 && b <= 0xdf) this.needed = 1;
        else if (b >= 0xe0 && b <= 0xef) {
          if (b === 0xe0) this.lower = 0xa0;
          else if (b === 0xed) this.upper = 0x9f;
          this.needed = 2;
        } else if (b >= 0xf0 && b <= 0xf4) {
          if (b === 0xf0) this.lower = 0x90;
          else if (b === 0xf4) this.upper = 0x8f;
          this.needed = 3;
        } else if (this.faultAt() && found < 0) found = i;
        continue;
      }
      if (b < this.lower || b > this.upper) {
        // The sequence is broken; the byte that broke it may start something valid: read it again.
        this.reset();
        if (this.faultAt() && found < 0) found = i;
        i--;
        continue;
      }
      this.lower = 0x80;
      this.upper = 0xbf;
      if (++this.seen === this.needed) {
        this.firstMultiByteLine ??= this.line;
        this.reset();
      }
    }
    this.offset += n;
    return found;
  }

  /**
   * Moves on to `offset` (on `line`) without seeing the bytes in between, which the caller checked
   * itself: the loader's byte path reads only printable ASCII, text in every encoding. A character
   * left open before them is cut short by them: a fault.
   */
  seek(line: number, offset: number): void {
    if (this.needed > 0) {
      this.faultAt();
      this.reset();
    }
    this.line = line;
    this.offset = offset;
  }

  /** The input ended: a sequence cut short is a fault. Returns the fault, if any. */
  end(): Utf8Fault | undefined {
    if (this.needed > 0) {
      this.faultAt();
      this.reset();
    }
    return this.fault;
  }

  /** Records a fault of the current sequence; true when it is the first. */
  private faultAt(): boolean {
    if (this.fault) return false;
    this.fault = { line: this.line, offset: this.leadOffset, byte: this.lead };
    return true;
  }

  private reset(): void {
    this.needed = 0;
    this.seen = 0;
    this.lower = 0x80;
    this.upper = 0xbf;
  }
}

/**
 * The detection rule, one for every input path: UTF-8 when every byte is valid UTF-8; Latin-1 when
 * some byte is not and nothing reads as a multi-byte UTF-8 character; `mixed` when the input holds
 * both (read either way, part of it would come out altered).
 */
export type EncodingVerdict = TextEncoding | 'mixed';

export function verdictOf(scan: Pick<Utf8Scanner, 'fault' | 'firstMultiByteLine'>): EncodingVerdict {
  if (!scan.fault) return 'utf8';
  return scan.firstMultiByteLine === undefined ? 'latin1' : 'mixed';
}

/**
 * The verdict on a sample (the head of a file): a character cut at the sample's end is fine unless
 * `complete` says the sample is the whole input.
 */
export function detectEncoding(sample: Uint8Array, complete = false): EncodingVerdict {
  const scan = new Utf8Scanner();
  scan.push(sample);
  if (complete) scan.end();
  return verdictOf(scan);
}

/** The encoding to read a whole scanned file with; a mixed file is refused at its first fault. */
export function encodingOf(file: string, scan: Utf8Scanner): TextEncoding {
  scan.end();
  const verdict = verdictOf(scan);
  if (verdict !== 'mixed') return verdict;
  throw faultError(file, scan, 'fix the file, or give --encoding latin1 to read all of it as Latin-1');
}

/**
 * The refusal of a scan that met a fault, at the fault's line: the file mixes encodings when it
 * also holds a UTF-8 character, else it is not UTF-8.
 */
export function faultError(
  file: string,
  scan: Pick<Utf8Scanner, 'fault' | 'firstMultiByteLine'>,
  hint: string = LATIN1_HINT,
): TextEncodingError {
  const fault = scan.fault as Utf8Fault;
  const mixed =
    scan.firstMultiByteLine === undefined
      ? ''
      : `, yet line ${scan.firstMultiByteLine} is UTF-8: the file mixes encodings`;
  return new TextEncodingError(file, fault.line, `${faultText(fault)}${mixed}`, hint);
}

const faultText = (f: Utf8Fault) =>
  `not valid UTF-8 (byte 0x${f.byte.toString(16).toUpperCase().padStart(2, '0')} at byte ${f.offset})`;

/**
 * The detection rule applied as the bytes arrive, for a reader that cannot read a file twice (the
 * loader types rows on their way into COPY): UTF-8 up to the first byte that is not, then Latin-1
 * when nothing before it read as a UTF-8 character (the bytes before were ASCII, the same text in
 * both); refused with a TextEncodingError as soon as the input holds both. On a whole input it
 * decides as {@link verdictOf} does.
 */
export class EncodingDetector {
  readonly scan = new Utf8Scanner();
  /** The encoding of the bytes checked so far: the one to decode them with. */
  encoding: TextEncoding = 'utf8';
  /** `utf8Only`: the input was said to be UTF-8; its first byte that is not is refused. */
  constructor(
    private readonly file: string,
    private readonly hint: string,
    private readonly utf8Only = false,
  ) {}

  /** Checks the next bytes; throws once the input mixes encodings. */
  push(chunk: Uint8Array): void {
    this.scan.push(chunk);
    this.decide();
  }

  /** The input ended: the encoding it was in, or a throw when it ended inside a mixed or cut character. */
  end(): TextEncoding {
    this.scan.end();
    this.decide();
    return this.encoding;
  }

  /** Moves on past bytes checked by the caller (Utf8Scanner.seek). */
  seek(line: number, offset: number): void {
    this.scan.seek(line, offset);
    this.decide();
  }

  private decide(): void {
    const scan = this.scan;
    if (scan.fault === undefined) return;
    if (this.utf8Only)
      throw faultError(this.file, { fault: scan.fault, firstMultiByteLine: undefined }, this.hint);
    if (scan.firstMultiByteLine !== undefined) throw faultError(this.file, scan, this.hint);
    this.encoding = 'latin1';
  }
}

/**
 * Checks that byte chunks are text in one encoding without decoding them, for a reader that decodes
 * them itself (csv-parse turns fields into strings): on checked bytes its decoding and a strict one
 * agree, and converting the whole file to a string first cost the replay a third more CPU.
 */
export interface SourceCheck {
  readonly encoding: TextEncoding;
  /** Throws a TextEncodingError at the first byte that is not text in the encoding. */
  push(chunk: Uint8Array): void;
  /** The input ended: throws when it ended inside a UTF-8 character. */
  end(): void;
}

export function createSourceCheck(encoding: TextEncoding, file: string, hint = LATIN1_HINT): SourceCheck {
  // Every byte is a Latin-1 character.
  if (encoding === 'latin1') return { encoding, push: () => undefined, end: () => undefined };
  const scan = new Utf8Scanner();
  // Only the fault: a multi-byte character after it would word the file as mixed, before it is met.
  const refuse = () => faultError(file, { fault: scan.fault, firstMultiByteLine: undefined }, hint);
  return {
    encoding,
    push(chunk) {
      if (scan.push(chunk) >= 0) throw refuse();
    },
    end() {
      if (scan.end()) throw refuse();
    },
  };
}

/** Bytes to text in one encoding; a byte that is not text in it throws a TextEncodingError. */
export interface SourceDecoder {
  readonly encoding: TextEncoding;
  decode(chunk: Uint8Array): string;
  /** The input ended: throws when it ended inside a UTF-8 character. */
  end(): string;
}

export function createSourceDecoder(
  encoding: TextEncoding,
  file: string,
  hint: string = LATIN1_HINT,
): SourceDecoder {
  return encoding === 'utf8' ? utf8Decoder(createSourceCheck(encoding, file, hint)) : latin1Decoder();
}

function utf8Decoder(check: SourceCheck): SourceDecoder {
  // fatal: a byte the check let through by mistake still cannot become U+FFFD.
  const text = new TextDecoder('utf-8', { fatal: true });
  return {
    encoding: 'utf8',
    decode(chunk) {
      check.push(chunk);
      return text.decode(chunk, { stream: true });
    },
    end() {
      check.end();
      return text.decode();
    },
  };
}

// Not TextDecoder('latin1'): WHATWG maps that label to windows-1252, which reads 0x80-0x9F as other
// characters than the ISO-8859-1 every other reader here (csv-parse, the loader's COPY) means.
function latin1Decoder(): SourceDecoder {
  const PIECE = 8192;
  return {
    encoding: 'latin1',
    decode(chunk) {
      let out = '';
      for (let i = 0; i < chunk.length; i += PIECE) {
        out += String.fromCharCode.apply(null, chunk.subarray(i, i + PIECE) as unknown as number[]);
      }
      return out;
    },
    end: () => '',
  };
}
