import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { type Options as CsvOptions, type Parser, parse } from 'csv-parse';
import { glob, isDynamicPattern } from 'tinyglobby';
import type { InvoiceLineInput } from '#core/invoice-line';
import { type ColumnMap, parseSourceRow, resolveColumns, type SourceRow } from '#core/source-row';
import {
  createSourceCheck,
  encodingOf,
  type TextEncoding,
  TextEncodingError,
  Utf8Scanner,
  verdictOf,
} from '#core/text-encoding';

export type SourceEncoding = TextEncoding;

export interface MalformedRow {
  file: string;
  /** 1-based physical line in the (decompressed) file; the header is line 1. */
  line: number;
  reason: string;
}

export interface ReplayOptions {
  /**
   * Forces the text encoding (a byte that is not text in it stops the replay with file and line). By
   * default each file is scanned whole first: valid UTF-8 is read as UTF-8, a file with no UTF-8 in it
   * as Latin-1, and one mixing both is refused.
   */
  encoding?: SourceEncoding;
  /** The first malformed row throws a MalformedRowError (after onMalformed saw it). */
  strict?: boolean;
  onMalformed?: (e: MalformedRow) => void;
  /** Called once per file when its encoding is known. */
  onFile?: (e: { file: string; encoding: SourceEncoding; compressed: boolean }) => void;
}

export interface ReplayedLine {
  /** The line without producedAt: the sender stamps it when the line leaves. */
  line: InvoiceLineInput & { lineNo: number };
  /** The invoice date as an instant (Europe/London local time resolved). */
  sourceTime: Date;
}

export class ReplayInputError extends Error {
  override name = 'ReplayInputError';
}

export class MalformedRowError extends Error {
  override name = 'MalformedRowError';
  constructor(readonly row: MalformedRow) {
    super(`${row.file}:${row.line}: ${row.reason}`);
  }
}

const DATA_FILE = /\.(csv|txt|tsv)(\.gz)?$/i;

/** Files named by paths: files as given, a directory's CSV files (recursively), glob patterns expanded. */
export async function resolveInputs(paths: string[] | string): Promise<string[]> {
  const files: string[] = [];
  for (const p of Array.isArray(paths) ? paths : [paths]) {
    if (isDynamicPattern(p)) {
      const found = await glob(p, { absolute: true, onlyFiles: true });
      if (found.length === 0) throw new ReplayInputError(`no file matches ${p}`);
      files.push(...found.sort());
      continue;
    }
    const stat = await fsp.stat(p).catch((cause: unknown) => {
      throw new ReplayInputError(`cannot read ${p}: no such file or directory`, { cause });
    });
    if (stat.isDirectory()) {
      const found = (await glob('**/*', { cwd: p, absolute: true, onlyFiles: true })).filter((f) =>
        DATA_FILE.test(f),
      );
      if (found.length === 0) throw new ReplayInputError(`directory ${p} holds no .csv or .csv.gz file`);
      files.push(...found.sort());
    } else {
      files.push(path.resolve(p));
    }
  }
  return [...new Set(files)];
}

interface FileRow {
  row: SourceRow;
  file: string;
  line: number;
}

type Record = string[] & { lines?: number };

/** Reads a stream's buffered objects in batches: one await per chunk instead of one per record. */
async function* readBatches<T>(stream: Readable, max = 4096): AsyncGenerator<T[]> {
  let error: Error | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  stream.on('readable', () => wake?.());
  stream.on('end', () => {
    ended = true;
    wake?.();
  });
  stream.on('error', (e) => {
    error = e;
    wake?.();
  });
  for (;;) {
    if (error) throw error;
    const batch: T[] = [];
    while (batch.length < max) {
      const item = stream.read() as T | null;
      if (item === null) break;
      batch.push(item);
    }
    if (batch.length > 0) {
      yield batch;
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
    wake = undefined;
  }
}

/** The file's bytes, gunzipped when they say gzip (1f 8b) whatever the name. */
async function openBytes(
  file: string,
  gunzipChunk?: number,
): Promise<{ bytes: Readable; compressed: boolean }> {
  const magic = Buffer.alloc(2);
  try {
    const handle = await fsp.open(file, 'r');
    await handle.read(magic, 0, 2, 0).finally(() => handle.close());
  } catch (cause) {
    throw new ReplayInputError(`cannot open ${file}`, { cause });
  }
  const raw = fs.createReadStream(file, { highWaterMark: 256 * 1024 });
  const compressed = magic[0] === 0x1f && magic[1] === 0x8b;
  if (!compressed) return { bytes: raw, compressed };
  const gunzip = zlib.createGunzip(gunzipChunk ? { chunkSize: gunzipChunk } : {});
  raw.on('error', (e) => gunzip.destroy(e));
  gunzip.on('close', () => raw.destroy());
  return { bytes: raw.pipe(gunzip), compressed };
}

/**
 * Reads the whole file once before anything of it is sent: a sample cannot decide, since the
 * Kaggle copy of the data set is Latin-1 and its first non-ASCII byte (a `£`) is 3 MB in.
 * Costs a gunzip and a scan: about 0.25 s of CPU for the real file's 45 MB.
 */
async function scanEncoding(file: string): Promise<TextEncoding> {
  // Large chunks gunzip in a quarter of the CPU time. The parse keeps the default 16 KiB: csv-parse fed
  // 256 KiB chunks took as much CPU and twice the time.
  const { bytes } = await openBytes(file, 256 * 1024);
  const scan = new Utf8Scanner();
  try {
    for await (const chunk of bytes) {
      scan.push(chunk as Buffer);
      if (verdictOf(scan) === 'mixed') break;
    }
  } catch (cause) {
    throw new ReplayInputError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
  } finally {
    bytes.destroy();
  }
  return encodingOf(file, scan);
}

/** The file's bytes, checked by the one source check: a byte that is not text stops them with its line. */
function checkedBytes(file: string, bytes: Readable, encoding: TextEncoding): Readable {
  const check = createSourceCheck(encoding, file);
  return Readable.from(
    (async function* () {
      for await (const chunk of bytes) {
        check.push(chunk as Buffer);
        yield chunk as Buffer;
      }
      check.end();
    })(),
    { objectMode: false },
  );
}

/**
 * A csv-parse stream over checked bytes (it decodes them in `encoding`); records it skips (bad quoting) travel in the record stream
 * as `{ line, reason }` markers, so reports keep file order. Each record carries its line number.
 */
function csvRecords(encoding: TextEncoding): Parser {
  let parser: Parser | undefined;
  let lastSkipped = -1;
  const csvOptions: CsvOptions = {
    bom: true,
    encoding,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (err) => {
      if (!err) return;
      const line = Number((err as { lines?: number }).lines ?? 0);
      // One bad record can raise several errors (a stray quote, then a field count): report it once.
      if (line === lastSkipped) return;
      lastSkipped = line;
      parser?.push({ line, reason: err.message });
    },
  };
  parser = parse(csvOptions);
  // Stamping the live line counter at push time is far cheaper than `info: true`/`on_record`, which build an
  // info object per record (they doubled the parse time of the real file).
  const live = parser as Parser & { info: { lines: number } };
  const push = parser.push.bind(parser);
  parser.push = (chunk: unknown) => {
    if (Array.isArray(chunk)) (chunk as Record).lines = live.info.lines;
    return push(chunk);
  };
  return parser;
}

async function* readFileRows(file: string, opts: ReplayOptions): AsyncGenerator<FileRow[]> {
  const encoding = opts.encoding ?? (await scanEncoding(file));
  const { bytes, compressed } = await openBytes(file);
  opts.onFile?.({ file, encoding, compressed });
  const body = checkedBytes(file, bytes, encoding);
  const parser = csvRecords(encoding);
  pipeline(body, parser, () => {
    // Errors surface through the parser's reads below.
  });

  let columns: ColumnMap | undefined;
  let width = 0;
  const report = (m: MalformedRow) => {
    opts.onMalformed?.(m);
    if (opts.strict) throw new MalformedRowError(m);
  };
  try {
    for await (const records of readBatches<Record | { line: number; reason: string }>(parser)) {
      const out: FileRow[] = [];
      for (const record of records) {
        if (!Array.isArray(record)) {
          report({ file, ...record });
          continue;
        }
        const line = record.lines ?? 0;
        if (columns === undefined) {
          const resolved = resolveColumns(record);
          if (!resolved.ok) throw new ReplayInputError(`${file}: ${resolved.reason}`);
          columns = resolved.columns;
          width = record.length;
          continue;
        }
        if (record.length !== width) {
          report({ file, line, reason: `expected ${width} fields, got ${record.length}` });
          continue;
        }
        const parsed = parseSourceRow(record, columns);
        if (parsed.ok) out.push({ row: parsed.row, file, line });
        else report({ file, line, reason: parsed.reason });
      }
      if (out.length > 0) yield out;
    }
    if (columns === undefined) throw new ReplayInputError(`${file}: empty file, no header`);
  } catch (cause) {
    if (
      cause instanceof MalformedRowError ||
      cause instanceof ReplayInputError ||
      cause instanceof TextEncodingError
    )
      throw cause;
    throw new ReplayInputError(`${file}: ${(cause as Error).message}`, { cause });
  } finally {
    parser.destroy();
    body.destroy();
    bytes.destroy();
  }
}

/** Merges per-file batch streams by invoice date; ties keep file order. Files are read lazily. */
async function* mergeByDate(sources: AsyncGenerator<FileRow[]>[]): AsyncGenerator<FileRow[]> {
  if (sources.length === 1) {
    yield* sources[0] as AsyncGenerator<FileRow[]>;
    return;
  }
  const batches: (FileRow[] | undefined)[] = [];
  const cursors: number[] = [];
  try {
    for (const s of sources) {
      batches.push((await s.next()).value ?? undefined);
      cursors.push(0);
    }
    let out: FileRow[] = [];
    for (;;) {
      let best = -1;
      let bestDate = '';
      for (let i = 0; i < batches.length; i++) {
        const b = batches[i];
        if (!b) continue;
        const date = (b[cursors[i] as number] as FileRow).row.invoiceDate;
        if (best < 0 || date < bestDate) {
          best = i;
          bestDate = date;
        }
      }
      if (best < 0) break;
      const batch = batches[best] as FileRow[];
      out.push(batch[cursors[best] as number] as FileRow);
      cursors[best] = (cursors[best] as number) + 1;
      if ((cursors[best] as number) >= batch.length) {
        if (out.length > 0) {
          yield out;
          out = [];
        }
        batches[best] = (await (sources[best] as AsyncGenerator<FileRow[]>).next()).value ?? undefined;
        cursors[best] = 0;
      } else if (out.length >= 4096) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    await Promise.all(sources.map((s) => s.return(undefined)));
  }
}

// Europe/London offset per calendar day, taken at noon: trading hours never straddle the 01:00 UTC switch.
const offsetCache = new Map<string, number>();
const londonParts = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/London',
  hour: '2-digit',
  hourCycle: 'h23',
});

/** `YYYY-MM-DDTHH:MM:SS` Europe/London local to an instant. */
export function londonLocalToDate(local: string): Date {
  // Consecutive lines of an invoice share its date: one parse per invoice.
  if (local === lastLocal) return new Date(lastMs);
  const day = local.slice(0, 10);
  let offsetMs = offsetCache.get(day);
  if (offsetMs === undefined) {
    const noonUtc = new Date(`${day}T12:00:00Z`);
    const londonHour = Number(londonParts.format(noonUtc));
    offsetMs = (londonHour - 12) * 3_600_000;
    if (offsetCache.size > 10_000) offsetCache.clear();
    offsetCache.set(day, offsetMs);
  }
  lastLocal = local;
  lastMs = Date.parse(`${local}Z`) - offsetMs;
  return new Date(lastMs);
}
let lastLocal = '';
let lastMs = 0;

/**
 * Streams the lines of one or more Online Retail CSV files (plain or gzip, UTF-8 or Latin-1, LF or CRLF) in
 * constant memory apart from one counter per invoice, in batches. Several files are merged by invoice date.
 * `lineNo` is the line's position in its invoice in source order: the contract the warehouse loader follows.
 */
export async function* replayBatches(
  paths: string[] | string,
  opts: ReplayOptions = {},
): AsyncGenerator<ReplayedLine[]> {
  const files = await resolveInputs(paths);
  const lineNos = new Map<string, number>();
  for await (const rows of mergeByDate(files.map((f) => readFileRows(f, opts)))) {
    const out: ReplayedLine[] = [];
    for (const { row, file, line } of rows) {
      const lineNo = (lineNos.get(row.invoiceNo) ?? 0) + 1;
      if (lineNo > 1_000_000) {
        const m = { file, line, reason: `invoice ${row.invoiceNo} has more than 1,000,000 lines` };
        opts.onMalformed?.(m);
        if (opts.strict) throw new MalformedRowError(m);
        continue;
      }
      lineNos.set(row.invoiceNo, lineNo);
      out.push({
        line: {
          invoiceNo: row.invoiceNo,
          lineNo,
          stockCode: row.stockCode,
          description: row.description,
          quantity: row.quantity,
          invoiceDate: row.invoiceDate,
          unitPrice: row.unitPrice,
          customerId: row.customerId,
          country: row.country,
        },
        sourceTime: londonLocalToDate(row.invoiceDate),
      });
    }
    if (out.length > 0) yield out;
  }
}

/** {@link replayBatches} one line at a time. */
export async function* replayLines(
  paths: string[] | string,
  opts: ReplayOptions = {},
): AsyncGenerator<ReplayedLine> {
  for await (const batch of replayBatches(paths, opts)) yield* batch;
}
