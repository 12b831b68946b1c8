import { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { createSourceDecoder, detectEncoding } from '#core/text-encoding';
import { CSV_FIELDS, type CsvField } from './sql.ts';

/**
 * The first bytes of a source object: decompress when gzipped, split off and check the CSV header,
 * sniff the encoding. The rows themselves are read by batch/typer.ts.
 */

/** The first chunk of a stream plus a stream that replays it and the rest. */
async function peek(source: Readable, minBytes: number): Promise<{ head: Buffer; rest: Readable }> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < minBytes) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    chunks.push(next.value);
    size += next.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* replay() {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  const rest = Readable.from(replay(), { objectMode: false });
  rest.on('close', () => {
    if (!rest.readableEnded) void iterator.return?.();
  });
  return { head, rest };
}

/** Gunzips when the bytes say gzip (1f 8b), whatever the key's extension. */
export async function decompressed(body: Readable): Promise<Readable & { gzip?: boolean }> {
  const { head, rest } = await peek(body, 2);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    // Large output chunks: the typer and COPY pay per chunk (a carry, a CopyData message, a write).
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    rest.on('error', (err) => gunzip.destroy(err));
    return Object.assign(rest.pipe(gunzip), { gzip: true });
  }
  return Object.assign(rest, { gzip: false });
}

export interface CsvHead {
  /** Header cells, trimmed, BOM removed. */
  columns: string[];
  encoding: 'UTF8' | 'LATIN1';
  /** The bytes after the header line. */
  body: Readable;
  /** The header line's length in bytes (its line end included): where `body` starts in the object. */
  headerBytes: number;
}

/** Splits one CSV line into cells (quotes honoured); for the header only. */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells;
}

/**
 * The encoding of an object from its head, by the rule every input path shares (core/text-encoding.ts):
 * UTF-8 when the bytes are valid UTF-8 (a character cut at the end of the sample is fine), else
 * Latin-1. It decodes the header only: the loader's typer applies the rule to every byte of the rows.
 */
export function sniffEncoding(bytes: Uint8Array): 'UTF8' | 'LATIN1' {
  return detectEncoding(bytes) === 'utf8' ? 'UTF8' : 'LATIN1';
}

export class EmptyFileError extends Error {
  override name = 'EmptyFileError';
}

/** Reads the header line (up to 64 KiB) and sniffs the encoding of the first 256 KiB. */
export async function readCsvHead(text: Readable): Promise<CsvHead> {
  const { head, rest } = await peek(text, 256 * 1024);
  if (head.length === 0) throw new EmptyFileError('the file is empty');
  const nl = head.indexOf(0x0a);
  const headerBytes = nl === -1 ? head : head.subarray(0, nl);
  const encoding = sniffEncoding(head);
  // Not end(): a header longer than the sample may end inside a character, which is then left out.
  let header = createSourceDecoder(encoding === 'UTF8' ? 'utf8' : 'latin1', 'header').decode(headerBytes);
  header = header.replace(/^\uFEFF/, '').replace(/\r$/, '');
  const skip = nl === -1 ? head.length : nl + 1;
  let skipped = 0;
  const body = rest.pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (skipped >= skip) return cb(null, chunk);
        const cut = Math.min(skip - skipped, chunk.length);
        skipped += cut;
        cb(null, cut < chunk.length ? chunk.subarray(cut) : undefined);
      },
    }),
  );
  rest.on('error', (err) => body.destroy(err));
  return { columns: splitCsvLine(header).map((c) => c.trim()), encoding, body, headerBytes: skip };
}

export interface HeaderCheck {
  /** 1-based column of each required field. */
  columnOf?: Record<CsvField, number>;
  missing: string[];
  extra: string[];
  /** Required fields named by more than one column: which one holds the value is anyone's guess. */
  duplicated?: string[];
}

/** Matches the header to the Online Retail columns: names compared case- and space-insensitively. */
export function checkHeader(columns: string[]): HeaderCheck {
  const norm = (s: string) => s.toLowerCase().replace(/[\s_]/g, '');
  const index = new Map<string, number>();
  columns.forEach((c, i) => {
    if (!index.has(norm(c))) index.set(norm(c), i + 1);
  });
  const missing = CSV_FIELDS.filter((f) => !index.has(norm(f)));
  const wanted = new Set(CSV_FIELDS.map(norm));
  const extra = columns.filter((c) => !wanted.has(norm(c)));
  if (missing.length > 0) return { missing, extra };
  const duplicated = CSV_FIELDS.filter((f) => columns.filter((c) => norm(c) === norm(f)).length > 1);
  if (duplicated.length > 0) return { missing, extra, duplicated };
  const columnOf = Object.fromEntries(CSV_FIELDS.map((f) => [f, index.get(norm(f)) as number])) as Record<
    CsvField,
    number
  >;
  return { columnOf, missing, extra };
}
