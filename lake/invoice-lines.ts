import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  readParquetColumns,
  writeParquetColumns,
  writeParquetColumnsOffThread,
} from '#adapters/parquet-writer';
import { mapLimit } from '#adapters/retry';
import { INVOICE_LINES_PREFIX } from '#core/bucket-layout';
import { markLoadPhase } from '#core/load-phases';
import { TimeSlicer } from '#core/time-slice';
import { encodeLakeFile, flagColumns, INVOICE_LINE_SCHEMA, type Rows } from './invoice-lines-files.ts';
import { KeyIndex, type LakeLineInput, LakeLines, NO_STRING, type TyperIds } from './lake-lines.ts';

/**
 * The processed invoice lines: every line the loader accepted, as the warehouse fact has it, in
 * Parquet under `processed/invoice_lines/year=YYYY/month=MM/` (the invoice's London calendar
 * month, from dim_date's key). A partition holds one file after every write: a write merges its lines
 * into what the partition holds (a key already there is not written again; an archive line
 * lends the lineage times a key lacks, as the warehouse's MERGE does) and replaces the files it
 * read by one. docs/lake.md, "The processed invoice lines".
 */

export { INVOICE_LINES_PREFIX, LAKE_STATE_PREFIX } from '#core/bucket-layout';
export { INVOICE_LINE_SCHEMA, leanColumns } from './invoice-lines-files.ts';

export interface LakeSource {
  key: string;
  etag: string;
  source: 'stream' | 'file';
}

export { type LakeLineInput, LakeLines, StringTable } from './lake-lines.ts';

export class LakeError extends Error {
  override name = 'LakeError';
}

/**
 * A RowEncoder for the loader's typer (batch/typer.ts's shape) that keeps the lines for the lake
 * and writes no bytes: the typer's rules, line numbers and rejections are the warehouse load's.
 */
export class LakeLineCollector {
  readonly columns: readonly string[] = [];
  readonly header = undefined;
  readonly trailer = undefined;
  private static readonly EMPTY = Buffer.alloc(0);
  /** The typer's ids seen so far (a collector hears one typer: one object attempt). */
  private readonly known: TyperIds = { stock: [], description: [], customer: [], country: [] };
  constructor(
    readonly lines: LakeLines,
    private readonly source: LakeSource,
  ) {}
  write(line: LakeLineInput): void {
    this.lines.add(line, this.source.source, this.source.key, this.known);
  }
  take(): Buffer {
    return LakeLineCollector.EMPTY;
  }
}

// ----- partitions --------------------------------------------------------------------------------

/**
 * The partition of a date key (20111209 -> `year=2011/month=12/`): the invoice's calendar month as
 * the warehouse's dim_date numbers it. Invoice dates are London wall-clock times and stay that way:
 * no conversion to UTC, so a line at 00:30 on the first of a summer month is in that month. A month,
 * not a day: the real file's lines make 13 files of ~40,000 lines instead of 305 of ~1,800, a PUT
 * each (docs/lake.md, "Partitions").
 */
export function partitionOf(dateKey: number): string {
  const y = Math.floor(dateKey / 10_000);
  const m = Math.floor(dateKey / 100) % 100;
  return `year=${y}/month=${String(m).padStart(2, '0')}/`;
}

/** A month folder, or the day folder under it that a lake written before months has (read as its month's). */
const PARTITION = /^(year=\d{4}\/month=\d{2}\/)(?:day=\d{2}\/)?$/;
/** Whether a data file is in the partition's own folder (not a day folder under it, written before months). */
const inFolder = (partition: string, key: string) =>
  key.lastIndexOf('/') === INVOICE_LINES_PREFIX.length + partition.length - 1;
/** The partition folder of a data file's key (undefined: not a data file of the table). */
function partitionOfKey(key: string): string | undefined {
  if (!key.startsWith(INVOICE_LINES_PREFIX) || !key.endsWith('.parquet')) return undefined;
  const rest = key.slice(INVOICE_LINES_PREFIX.length);
  return PARTITION.exec(rest.slice(0, rest.lastIndexOf('/') + 1))?.[1];
}

// ----- storage ------------------------------------------------------------------------------------

export interface LakeStore {
  s3: S3Client;
  bucket: string;
  /** How files are encoded (default leanLakeEncoder). */
  encoder?: LakeEncoder;
}

/** The table's data files by partition folder (one listing of the table's prefix). */
export async function listLakeFiles(
  store: LakeStore,
  prefix = INVOICE_LINES_PREFIX,
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let token: string | undefined;
  do {
    const page = await store.s3.send(
      new ListObjectsV2Command({
        Bucket: store.bucket,
        Prefix: prefix,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) {
      const partition = o.Key ? partitionOfKey(o.Key) : undefined;
      if (!partition || !o.Key) continue;
      const files = out.get(partition) ?? [];
      files.push(o.Key);
      out.set(partition, files);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  for (const files of out.values()) files.sort();
  return out;
}

async function getBytes(store: LakeStore, key: string): Promise<Uint8Array> {
  const out = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
  if (!out.Body) throw new LakeError(`${key} has no body`);
  return out.Body.transformToByteArray();
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * An INT64 column as numbers (exact below 2^53); null: NaN. A column read as a BigInt64Array is
 * read as its two 32-bit halves: no bigint made per value (reading the real file's lake back made
 * ~4 million, and the garbage collection after them).
 */
function int64Numbers(values: ArrayLike<unknown>): Float64Array {
  const n = values.length;
  const out = new Float64Array(n);
  if (values instanceof BigInt64Array && LITTLE_ENDIAN) {
    const words = new Int32Array(values.buffer, values.byteOffset, n * 2);
    for (let i = 0; i < n; i++)
      out[i] = (words[2 * i + 1] as number) * 4294967296 + ((words[2 * i] as number) >>> 0);
  } else
    for (let i = 0; i < n; i++) {
      const v = values[i];
      out[i] = v === null || v === undefined ? Number.NaN : Number(v);
    }
  return out;
}

/** Microseconds to ms, truncated as a bigint division would (exact below 2^53 microseconds, year 2255); NaN: none. */
function msColumn(values: ArrayLike<unknown>): Float64Array {
  const out = int64Numbers(values);
  for (let i = 0; i < out.length; i++) out[i] = Math.trunc((out[i] as number) / 1000);
  return out;
}

/** Unit prices in thousandths, each checked exact (below 2^53). */
function priceColumn(values: ArrayLike<unknown>, file: string): Float64Array {
  const out = int64Numbers(values);
  for (let i = 0; i < out.length; i++)
    if (!Number.isSafeInteger(out[i]))
      throw new LakeError(`${file}: a unit price of ${String(values[i])} thousandths is past 2^53`);
  return out;
}

/** An INT32 column as read (an Int32Array: no copy), or its values as numbers. */
const int32Numbers = (values: ArrayLike<unknown>): ArrayLike<number> =>
  values instanceof Int32Array ? values : Float64Array.from(Array.from(values, Number));

/** A loop over rows looks at the slicer once every SLICE_ROWS + 1 rows (a mask: 4,096). */
const SLICE_ROWS = 4095;

/** Rows appended between two looks at the slicer when a file is read back (a few ms each). */
const APPEND_BLOCK = 8192;

/** A data file's lines (every column), appended to `into`. */
export async function readLakeFile(
  store: LakeStore,
  key: string,
  into = new LakeLines(),
): Promise<LakeLines> {
  // A column at a time, then a block of rows at a time, the event loop turned between them when a
  // slice is due: a month file is ~0.1 s of decoding and appending, and under `npm start` the API
  // shares this thread (whole, a month held it for up to 200 ms: session 12).
  const slicer = new TimeSlicer();
  const due = async () => {
    if (slicer.due) await slicer.turn();
  };
  const { rowCount, columns: c } = await readParquetColumns(
    await getBytes(store, key),
    INVOICE_LINE_SCHEMA,
    undefined,
    due,
  );
  const col = (name: string): ArrayLike<unknown> => c[name] ?? [];
  const texts = (name: string) => col(name) as ReadonlyArray<string | null>;
  const numbers = async (convert: () => ArrayLike<number>) => {
    const out = convert();
    await due();
    return out;
  };
  const columns = {
    invoiceNo: texts('invoice_no'),
    stockCode: texts('stock_code'),
    description: texts('description'),
    customerId: texts('customer_id'),
    country: texts('country_name'),
    source: texts('source'),
    sourceKey: texts('source_key'),
    lineNo: await numbers(() => int32Numbers(col('line_no'))),
    dateKey: await numbers(() => int32Numbers(col('date_key'))),
    quantity: await numbers(() => int32Numbers(col('quantity'))),
    invoiceMs: await numbers(() => msColumn(col('invoice_date'))),
    price: await numbers(() => priceColumn(col('unit_price'), key)),
    producedAt: await numbers(() => msColumn(col('produced_at'))),
    acceptedAt: await numbers(() => msColumn(col('accepted_at'))),
    streamVisibleAt: await numbers(() => msColumn(col('stream_visible_at'))),
    lakeVisibleAt: await numbers(() => msColumn(col('lake_visible_at'))),
    nonProduct: col('is_non_product'),
    duplicate: col('is_duplicate_row'),
  };
  for (let from = 0; from < rowCount; from += APPEND_BLOCK) {
    into.appendColumns(Math.min(APPEND_BLOCK, rowCount - from), columns, from);
    await due();
  }
  return into;
}

// ----- merging a partition ------------------------------------------------------------------------

/** What a merge did to one partition. */
interface Merged {
  lines: LakeLines;
  /** New keys written, and keys that were already there (their lineage filled where it lacked it). */
  added: number;
  already: number;
  changed: boolean;
}

/**
 * The warehouse's rule for a key met again: the first line kept wins; a later line fills the
 * lineage times the kept one lacks (only archive lines carry them, as only the archive's MERGE
 * lends them). Existing rows come first, then `incoming` rows in order.
 */
async function mergeLines(
  existing: LakeLines,
  incoming: LakeLines,
  rows: Rows,
  now: number,
  slicer: TimeSlicer,
): Promise<Merged> {
  if (existing.strings !== incoming.strings) throw new LakeError('merged lines must share one string table');
  const at = new KeyIndex(existing.length + rows.length);
  const keptExisting: number[] = [];
  const keptIncoming: number[] = [];
  // A key met again: its row in the output, and the line met (its row in `existing`, or in
  // `incoming` numbered past existing's), in order; typed arrays, as a reload meets every key again.
  const againRow = new Int32Array(existing.length + rows.length);
  const againLine = new Int32Array(existing.length + rows.length);
  let again = 0;
  let changed = false;
  for (let i = 0; i < existing.length; i++) {
    if ((i & SLICE_ROWS) === 0 && slicer.due) await slicer.turn();
    const row = at.add(existing.keyOf(i), keptExisting.length);
    if (row === undefined) keptExisting.push(i);
    else {
      againRow[again] = row;
      againLine[again++] = i;
      changed = true; // two files held a key
    }
  }
  let already = 0;
  for (let k = 0; k < rows.length; k++) {
    if ((k & SLICE_ROWS) === 0 && slicer.due) await slicer.turn();
    const i = rows[k] as number;
    const row = at.add(incoming.keyOf(i), keptExisting.length + keptIncoming.length);
    if (row === undefined) keptIncoming.push(i);
    else {
      againRow[again] = row;
      againLine[again++] = existing.length + i;
      already++;
    }
  }
  const out = new LakeLines(incoming.strings, Math.max(1, keptExisting.length + keptIncoming.length));
  out.append(existing, keptExisting);
  if (slicer.due) await slicer.turn();
  out.append(incoming, keptIncoming);
  out.lakeVisibleAt.fill(now, keptExisting.length, out.length);
  for (const f of LINEAGE)
    for (let k = 0; k < again; k++) {
      const row = againRow[k] as number;
      const line = againLine[k] as number;
      const lent = line < existing.length ? existing[f][line] : incoming[f][line - existing.length];
      if (Number.isNaN(out[f][row]) && !Number.isNaN(lent)) {
        out[f][row] = lent as number;
        changed = true;
      }
    }
  const added = keptIncoming.length;
  return { lines: out, added, already, changed: changed || added > 0 };
}

/** The lineage times a line met again may lend the kept one. */
const LINEAGE = ['producedAt', 'acceptedAt', 'streamVisibleAt'] as const;

/**
 * Duplicate rows as the warehouse decides them (batch/sql.ts, duplicateFixStep): within an invoice,
 * a row with the same product, description, quantity, time, price, customer and country as one of
 * a lower line number. Equal times mean one month, so one partition sees all of a row's equals.
 * (String columns compare by id: one table, one id per distinct value.)
 */
async function markDuplicates(lines: LakeLines, rows: Rows, slicer: TimeSlicer): Promise<void> {
  const same = (a: number, b: number) =>
    lines.invoiceNo[a] === lines.invoiceNo[b] &&
    lines.stockCode[a] === lines.stockCode[b] &&
    lines.description[a] === lines.description[b] &&
    lines.quantity[a] === lines.quantity[b] &&
    lines.invoiceMs[a] === lines.invoiceMs[b] &&
    lines.price[a] === lines.price[b] &&
    lines.customerId[a] === lines.customerId[b] &&
    lines.country[a] === lines.country[b];
  const mix = (h: number, v: number) =>
    (Math.imul(h ^ (v | 0) ^ Math.floor(v / 4294967296), 0x9e3779b1) + 0x7f4a7c15) | 0;
  // Rows chained by a hash of their values (typed arrays, nothing allocated per row); rows of one
  // hash are compared value by value (a hash is not proof).
  const n = rows.length;
  let buckets = 16;
  while (buckets < n * 2) buckets *= 2;
  const head = new Int32Array(buckets).fill(-1);
  const next = new Int32Array(n);
  const hashes = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    if ((k & SLICE_ROWS) === 0 && slicer.due) await slicer.turn();
    const i = rows[k] as number;
    let h = mix(0, lines.invoiceNo[i] as number);
    h = mix(h, lines.stockCode[i] as number);
    h = mix(h, lines.description[i] as number);
    h = mix(h, lines.quantity[i] as number);
    h = mix(h, lines.invoiceMs[i] as number);
    h = mix(h, lines.price[i] as number);
    h = mix(h, lines.customerId[i] as number);
    h = mix(h, lines.country[i] as number);
    hashes[k] = h;
    next[k] = head[h & (buckets - 1)] as number;
    head[h & (buckets - 1)] = k;
  }
  for (let k = 0; k < n; k++) {
    if ((k & SLICE_ROWS) === 0 && slicer.due) await slicer.turn();
    const i = rows[k] as number;
    const h = hashes[k] as number;
    let duplicate = false;
    for (let j = head[h & (buckets - 1)] as number; j !== -1 && !duplicate; j = next[j] as number) {
      const r = rows[j] as number;
      duplicate =
        j !== k && hashes[j] === h && (lines.lineNo[r] as number) < (lines.lineNo[i] as number) && same(i, r);
    }
    lines.duplicate[i] = duplicate ? 1 : 0;
  }
}

const allRows = (lines: LakeLines) => Array.from({ length: lines.length }, (_, i) => i);

function before(lines: LakeLines, a: number, b: number): number {
  const t = (lines.invoiceMs[a] as number) - (lines.invoiceMs[b] as number);
  if (t !== 0) return t;
  const ia = lines.invoiceNo[a] as number;
  const ib = lines.invoiceNo[b] as number;
  if (ia !== ib) {
    const x = lines.strings.text(ia);
    const y = lines.strings.text(ib);
    if (x !== y) return x < y ? -1 : 1;
  }
  return (lines.lineNo[a] as number) - (lines.lineNo[b] as number);
}

/**
 * Row order of a file: by invoice time, invoice and line (query engines read a month's rows in time
 * order; min/max statistics stay tight). Rows already in order (a file's rows mostly are) are not sorted.
 */
function sortedRows(lines: LakeLines, rows: Rows = allRows(lines)): Rows {
  const order = new Int32Array(rows);
  let sorted = true;
  for (let k = 1; k < order.length && sorted; k++)
    sorted = before(lines, order[k - 1] as number, order[k] as number) <= 0;
  if (sorted) return order;
  return byGroupRank(lines, order);
}

const textOrder = (lines: LakeLines) => (a: number, b: number) => {
  const x = lines.strings.text(a);
  const y = lines.strings.text(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/**
 * The order without comparing rows: the rows grouped by invoice and time (one group per invoice
 * where, as in the real file, an invoice has one time), the groups ranked by time and invoice number
 * (a few thousand a month, compared), the rows placed by rank in one counting pass, and each group's
 * lines by line number (they mostly come in order: an insertion sort, linear then; stable, as the
 * comparison it replaces). A comparator sort of a month's ~40,000 rows cost the real file ~0.3 s,
 * profiled, and under `npm start`, where the API shares this thread, it held the event loop for
 * 50-100 ms at a time (session 12: an invoice of the stream had two times, so the rank was given up).
 */
function byGroupRank(lines: LakeLines, order: Int32Array): Int32Array {
  const n = order.length;
  // Each row's group: an invoice's first time by the invoice's id; its other times (rare) by id and time.
  const firstGroup = new Map<number, number>();
  const otherGroup = new Map<string, number>();
  const groupInvoice: number[] = [];
  const groupMs: number[] = [];
  const newGroup = (id: number, ms: number) => {
    groupInvoice.push(id);
    groupMs.push(ms);
    return groupInvoice.length - 1;
  };
  const group = new Int32Array(n);
  let lastId = NO_STRING;
  let lastMs = Number.NaN;
  let last = -1;
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const id = lines.invoiceNo[i] as number;
    const ms = lines.invoiceMs[i] as number;
    if (id !== lastId || ms !== lastMs) {
      let g = firstGroup.get(id);
      if (g === undefined) {
        g = newGroup(id, ms);
        firstGroup.set(id, g);
      } else if (groupMs[g] !== ms) {
        const key = `${id} ${ms}`;
        g = otherGroup.get(key);
        if (g === undefined) {
          g = newGroup(id, ms);
          otherGroup.set(key, g);
        }
      }
      lastId = id;
      lastMs = ms;
      last = g;
    }
    group[k] = last;
  }
  const byText = textOrder(lines);
  const ranked = Array.from(groupInvoice, (_, g) => g).sort(
    (a, b) =>
      (groupMs[a] as number) - (groupMs[b] as number) ||
      byText(groupInvoice[a] as number, groupInvoice[b] as number),
  );
  const rankOf = new Int32Array(ranked.length);
  ranked.forEach((g, r) => {
    rankOf[g] = r;
  });
  const start = new Int32Array(ranked.length + 1);
  for (let k = 0; k < n; k++) {
    const r = rankOf[group[k] as number] as number;
    group[k] = r;
    start[r + 1] = (start[r + 1] as number) + 1;
  }
  for (let r = 0; r < ranked.length; r++) start[r + 1] = (start[r + 1] as number) + (start[r] as number);
  const out = new Int32Array(n);
  const at = start.slice(0, ranked.length);
  for (let k = 0; k < n; k++) {
    const r = group[k] as number;
    out[at[r] as number] = order[k] as number;
    at[r] = (at[r] as number) + 1;
  }
  for (let r = 0; r < ranked.length; r++)
    for (let k = (start[r] as number) + 1; k < (start[r + 1] as number); k++) {
      const row = out[k] as number;
      const line = lines.lineNo[row] as number;
      let j = k - 1;
      while (j >= (start[r] as number) && (lines.lineNo[out[j] as number] as number) > line) {
        out[j + 1] = out[j] as number;
        j--;
      }
      out[j + 1] = row;
    }
  return out;
}

/** Strings as UTF-8 bytes, one Uint8Array per distinct value (writeParquetColumns says why). */
function bytesColumn(lines: LakeLines, ids: Int32Array, order: Rows): Array<Uint8Array | null> {
  const out = new Array<Uint8Array | null>(order.length);
  for (let k = 0; k < order.length; k++) {
    const id = ids[order[k] as number] as number;
    out[k] = id === NO_STRING ? null : lines.strings.bytes(id);
  }
  return out;
}
/** Times in ms to microseconds (numbers: exact below 2^53, the writer makes them INT64); NaN: null. */
function microsColumn(values: ArrayLike<number>, order: Rows): Array<number | null> {
  const out = new Array<number | null>(order.length);
  for (let k = 0; k < order.length; k++) {
    const v = values[order[k] as number] as number;
    out[k] = Number.isNaN(v) ? null : v * 1000;
  }
  return out;
}

function numbersColumn(values: ArrayLike<number>, order: Rows): Int32Array {
  const out = new Int32Array(order.length);
  for (let k = 0; k < order.length; k++) out[k] = values[order[k] as number] as number;
  return out;
}

/** Prices and totals as unscaled bigints (DECIMAL(12,3) / (18,3)); a total past 2^53 multiplied as bigints. */
function moneyColumns(lines: LakeLines, order: Rows): { price: bigint[]; total: bigint[] } {
  const price = new Array<bigint>(order.length);
  const total = new Array<bigint>(order.length);
  let lastPrice = Number.NaN;
  let lastBig = 0n;
  for (let k = 0; k < order.length; k++) {
    const i = order[k] as number;
    const p = lines.price[i] as number;
    const q = lines.quantity[i] as number;
    if (p !== lastPrice) {
      lastPrice = p;
      lastBig = BigInt(p);
    }
    price[k] = lastBig;
    const t = p * q;
    total[k] = Number.isSafeInteger(t) ? BigInt(t) : lastBig * BigInt(q);
  }
  return { price, total };
}

/** The lines as Parquet bytes, in `order` (default: time, invoice, line). */
export function encodeLakeLines(lines: LakeLines, order: Rows = sortedRows(lines)): Uint8Array {
  return writeParquetColumns(INVOICE_LINE_SCHEMA, lakeColumns(lines, order), order.length);
}

/** One partition's file to encode: `rows` of `lines`, in that order (the file's row order). */
export interface LakePart {
  lines: LakeLines;
  rows: Rows;
}

/**
 * The lake's Parquet encoder port: the files of a write's partitions, one per part, in the parts'
 * order. The default (leanLakeEncoder) is plain JavaScript, so the Lambda bundle carries it; a
 * process may wire another that writes the same columns (docs/lake.md, "The encoder").
 */
export interface LakeEncoder {
  encode(parts: readonly LakePart[]): Promise<Uint8Array[]>;
}

/**
 * The lines as Parquet by lake/invoice-lines-parquet.ts's lean writer: the same schema and values as
 * encodeLakeLines (hyparquet-writer's generic path), several times faster (bench/lake.ts). Each
 * file's columns are gathered and encoded on the lake's encoder thread (./invoice-lines-files.ts,
 * encodeLakeFile), and the event loop gets a turn between files.
 */
export const leanLakeEncoder: LakeEncoder = {
  async encode(parts) {
    const out: Uint8Array[] = [];
    for (const p of parts) {
      out.push(await encodeLakeFile(p.lines, p.rows));
      await turn();
    }
    return out;
  },
};

/**
 * The lines by hyparquet-writer's generic path (encodeLakeLines' bytes) on the Parquet encoder
 * thread: the lean writer's reference (a test holds their files equal as DuckDB reads them) and the
 * bench's "before".
 */
export const hyparquetLakeEncoder: LakeEncoder = {
  async encode(parts) {
    const out: Uint8Array[] = [];
    for (const p of parts)
      out.push(
        await writeParquetColumnsOffThread(INVOICE_LINE_SCHEMA, lakeColumns(p.lines, p.rows), p.rows.length),
      );
    return out;
  },
};

/** The schema's columns of the lines, physical values in `order`. */
function lakeColumns(lines: LakeLines, order: Rows): unknown[][] {
  const { price, total } = moneyColumns(lines, order);
  const bytesOf = (ids: Int32Array) => bytesColumn(lines, ids, order);
  return [
    bytesOf(lines.invoiceNo),
    numbersColumn(lines.lineNo, order) as unknown as unknown[],
    numbersColumn(lines.dateKey, order) as unknown as unknown[],
    microsColumn(lines.invoiceMs, order),
    bytesOf(lines.stockCode),
    bytesOf(lines.description),
    bytesOf(lines.customerId),
    bytesOf(lines.country),
    numbersColumn(lines.quantity, order) as unknown as unknown[],
    price,
    total,
    ...flagColumns(lines, order).map((values) => Array.from(values, (v) => v === 1)),
    microsColumn(lines.producedAt, order),
    microsColumn(lines.acceptedAt, order),
    microsColumn(lines.streamVisibleAt, order),
    bytesOf(lines.source),
    bytesOf(lines.sourceKey),
    microsColumn(lines.lakeVisibleAt, order),
  ];
}

/** A data file's name: its content's hash, so the same lines written again land on the same object. */
export function dataFileKey(partition: string, bytes: Uint8Array): string {
  return `${INVOICE_LINES_PREFIX}${partition}part-${createHash('sha256').update(bytes).digest('hex').slice(0, 20)}.parquet`;
}

export interface PartitionWrite {
  partition: string;
  /** The file the partition holds now (undefined: unchanged, nothing written). */
  file?: string;
  added: number;
  already: number;
  /** Files read and replaced. */
  replaced: string[];
}

/**
 * Each partition's rows, in row order: one pass numbers each row's partition, a second places the
 * rows (typed arrays: no array grown a row at a time).
 */
function rowsByPartition(lines: LakeLines): Map<string, Int32Array> {
  const partitionAt = new Int32Array(lines.length);
  const names: string[] = [];
  const counts: number[] = [];
  const byDate = new Map<number, number>();
  let lastKey = -1;
  let last = -1;
  for (let i = 0; i < lines.length; i++) {
    const dk = lines.dateKey[i] as number;
    if (dk !== lastKey) {
      lastKey = dk;
      let k = byDate.get(dk);
      if (k === undefined) {
        const p = partitionOf(dk);
        k = names.indexOf(p);
        if (k === -1) {
          k = names.length;
          names.push(p);
          counts.push(0);
        }
        byDate.set(dk, k);
      }
      last = k;
    }
    partitionAt[i] = last;
    counts[last] = (counts[last] as number) + 1;
  }
  const rows = counts.map((n) => new Int32Array(n));
  const at = new Int32Array(names.length);
  for (let i = 0; i < lines.length; i++) {
    const k = partitionAt[i] as number;
    (rows[k] as Int32Array)[at[k] as number] = i;
    at[k] = (at[k] as number) + 1;
  }
  return new Map(names.map((p, k) => [p, rows[k] as Int32Array]));
}

function distinctKeys(lines: LakeLines, rows: Rows): boolean {
  const seen = new KeyIndex(rows.length);
  for (let k = 0; k < rows.length; k++)
    if (seen.add(lines.keyOf(rows[k] as number), k) !== undefined) return false;
  return true;
}

/** A partition merged and waiting for its file (undefined `part`: nothing to write). */
interface MergedPartition {
  partition: string;
  files: readonly string[];
  part?: LakePart;
  /** The part's lines were made by the merge (not the caller's): released once encoded. */
  own?: boolean;
  added: number;
  already: number;
}

/**
 * Merges `rows` of `incoming` into one partition: reads the files it holds and answers the merged
 * lines in file order, or no part when the partition already holds exactly them.
 */
async function mergePartition(
  store: LakeStore,
  partition: string,
  files: readonly string[],
  incoming: LakeLines,
  rows: Rows,
  now: number,
): Promise<MergedPartition> {
  const slicer = new TimeSlicer();
  // Only the rows the typer did not settle (LakeLines.unsettled) are checked for keys and duplicates.
  const check = files.length === 0 ? incoming.unsettled(rows) : rows;
  const fresh = files.length === 0 && distinctKeys(incoming, check);
  await turn();
  let merged: Merged;
  let kept: Rows;
  if (fresh) {
    // A new partition of lines with no key twice (a first load): nothing to merge, no copy.
    for (let k = 0; k < rows.length; k++) incoming.lakeVisibleAt[rows[k] as number] = now;
    merged = { lines: incoming, added: rows.length, already: 0, changed: rows.length > 0 };
    kept = rows;
  } else {
    const existing = new LakeLines(incoming.strings);
    for (const f of files) await readLakeFile(store, f, existing);
    merged = await mergeLines(existing, incoming, rows, now, slicer);
    // Its rows are copied into the merged lines: its memory goes to the next big lines.
    existing.release();
    kept = allRows(merged.lines);
    await turn();
  }
  const { added, already } = merged;
  if ((!merged.changed && files.length === 1 && inFolder(partition, files[0] as string)) || kept.length === 0)
    return {
      partition,
      files,
      added: kept.length === 0 ? 0 : added,
      already: kept.length === 0 ? 0 : already,
    };
  await markDuplicates(merged.lines, fresh ? check : kept, slicer);
  await turn();
  const order = sortedRows(merged.lines, kept);
  await turn();
  return { partition, files, part: { lines: merged.lines, rows: order }, own: !fresh, added, already };
}

/**
 * A turn of the event loop between a merge's steps (each a few ms for a month): the loader's
 * commit runs its statements on this thread while a waiting sink merges, and under `npm start` so
 * does the API; a continuation waits for one step, not for a partition's whole merge.
 */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** PUTs a partition's new file, then deletes the files it read. */
async function replacePartition(
  store: LakeStore,
  m: MergedPartition,
  file: Uint8Array,
): Promise<PartitionWrite> {
  const { partition, added, already } = m;
  const key = dataFileKey(partition, file);
  await store.s3.send(
    new PutObjectCommand({
      Bucket: store.bucket,
      Key: key,
      Body: file,
      ContentType: 'application/vnd.apache.parquet',
    }),
  );
  const replaced = m.files.filter((f) => f !== key);
  for (const f of replaced) await store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: f }));
  return { partition, file: key, added, already, replaced };
}

/**
 * Encodes each merged partition's file and PUTs it while the next is encoded (up to PUT_CONCURRENCY
 * in flight: a first load writes a file per month, and S3 answers while this thread encodes);
 * after its PUT a partition's files that were read are deleted (never one it did not read: a
 * concurrent writer's file stays, and the next merge folds it in). A crash between the write and
 * the deletes leaves a key in two files until the next write or compaction of the partition;
 * reconcile reports it. The first failure stops the encoding and is thrown once the PUTs settled.
 *
 * Nothing is PUT before `gate` says yes (files encoded meanwhile wait); a no stops the encoding and
 * answers undefined: nothing was written.
 */
async function writePartitions(
  store: LakeStore,
  merged: readonly MergedPartition[],
  gate: Promise<boolean>,
): Promise<PartitionWrite[] | undefined> {
  const encoder = store.encoder ?? leanLakeEncoder;
  let open: boolean | undefined;
  void gate.then((yes) => {
    open = yes;
  });
  const writes: Array<Promise<PartitionWrite>> = [];
  const waiting: Array<{ m: MergedPartition; file: Uint8Array }> = [];
  const inFlight = new Set<Promise<PartitionWrite>>();
  let failed = false;
  const put = async (m: MergedPartition, file: Uint8Array) => {
    while (inFlight.size >= PUT_CONCURRENCY) await Promise.race(inFlight).catch(() => undefined);
    const write = replacePartition(store, m, file);
    inFlight.add(write);
    write.then(
      () => inFlight.delete(write),
      () => {
        failed = true;
        inFlight.delete(write);
      },
    );
    writes.push(write);
  };
  for (const m of merged) {
    if (!m.part) {
      writes.push(
        Promise.resolve({ partition: m.partition, added: m.added, already: m.already, replaced: [] }),
      );
      continue;
    }
    if (failed || open === false) break;
    const files = await encoder.encode([m.part]);
    if (m.own) m.part.lines.release();
    const file = files[0];
    if (files.length !== 1 || !file) throw new LakeError(`the encoder answered ${files.length} files for 1`);
    waiting.push({ m, file });
    if (open) for (const w of waiting.splice(0)) await put(w.m, w.file);
  }
  if (!failed && open !== false) markLoadPhase('lake-encoded');
  if (!(await gate)) return undefined;
  if (!failed) for (const w of waiting.splice(0)) await put(w.m, w.file);
  return Promise.all(writes);
}

export interface LakeWriteResult {
  lines: number;
  added: number;
  already: number;
  partitions: PartitionWrite[];
}

/** Partitions read at once (each a GET and a merge). */
const PARTITION_CONCURRENCY = 4;
/** Files PUT at once: a first load writes a file per month of its lines, each a round trip. */
const PUT_CONCURRENCY = 16;

/**
 * Writes lines into the lake, one merge per partition they touch: files sized by the partition
 * (a month of lines in one file), whatever the number of source objects the lines came from.
 */
export async function writeLakeLines(
  store: LakeStore,
  lines: LakeLines,
  options: { now?: number } = {},
): Promise<LakeWriteResult> {
  return (await writeLakeLinesWhen(store, lines, Promise.resolve(true), options)) as LakeWriteResult;
}

/**
 * writeLakeLines that may start before its lines are final: the partitions are read, merged and
 * encoded at once, and nothing is PUT before `gate` resolves true (the loader's commit); false
 * answers undefined with nothing written. Its lines are stamped lake-visible when the merge ran.
 */
export async function writeLakeLinesWhen(
  store: LakeStore,
  lines: LakeLines,
  gate: Promise<boolean>,
  options: { now?: number } = {},
): Promise<LakeWriteResult | undefined> {
  const now = options.now ?? Date.now();
  const byPartition = rowsByPartition(lines);
  const files = byPartition.size > 0 ? await listLakeFiles(store) : new Map<string, string[]>();
  const merged = await mapLimit([...byPartition], PARTITION_CONCURRENCY, ([p, rows]) =>
    mergePartition(store, p, files.get(p) ?? [], lines, rows, now),
  );
  const partitions = await writePartitions(store, merged, gate);
  if (!partitions) return undefined;
  await settlePartitions(
    store,
    partitions.filter((p) => p.file).map((p) => p.partition),
  );
  markLoadPhase('lake-written');
  return {
    lines: lines.length,
    added: partitions.reduce((n, p) => n + p.added, 0),
    already: partitions.reduce((n, p) => n + p.already, 0),
    partitions,
  };
}

/** Times a write lists its partitions again while another writer keeps adding to them. */
const SETTLE_ROUNDS = 5;

/**
 * After a write: a partition it wrote that now holds more than one file had another writer at the
 * same time. Locally one queue per process orders writes (lakeWrites), but on AWS two loader
 * invocations can merge one month at once, each keeping a file with every line the old one had.
 * Such a partition is merged again, as compaction does, until it holds one file. The merge is
 * deterministic (the same files give the same bytes, so the same content-addressed key), so writers
 * that settle the same partition at once write the same object and converge; a file another writer
 * deleted while this one read it sends it round again. One listing when nothing overlapped; a
 * partition still crowded after SETTLE_ROUNDS merges fails the write rather than pass unnoticed.
 */
async function settlePartitions(store: LakeStore, written: readonly string[]): Promise<void> {
  if (written.length === 0) return;
  for (let round = 0; ; round++) {
    const files = await listLakeFiles(store);
    const crowded = written.filter((p) => (files.get(p)?.length ?? 0) > 1);
    if (crowded.length === 0) return;
    // Not settled: the write fails (no marker), so the catch-up writes its object again and settles.
    if (round === SETTLE_ROUNDS)
      throw new LakeError(
        `${crowded.join(', ')} still hold more than one file after ${SETTLE_ROUNDS} merges: another writer keeps adding`,
      );
    try {
      const merged = await mapLimit(crowded, PARTITION_CONCURRENCY, (p) =>
        mergePartition(store, p, files.get(p) ?? [], new LakeLines(), [], Date.now()),
      );
      await writePartitions(store, merged, Promise.resolve(true));
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchKey') throw err;
    }
  }
}

/**
 * Compaction: every partition holding more than one file (a crashed or concurrent write) or a file
 * in a day folder under it (a lake written before months) is merged into one file in its folder;
 * one file there already is left alone, so a second pass does nothing.
 */
export async function compactLake(store: LakeStore): Promise<PartitionWrite[]> {
  const files = await listLakeFiles(store);
  const many = [...files].filter(([p, f]) => f.length > 1 || !inFolder(p, f[0] as string));
  const merged = await mapLimit(many, PARTITION_CONCURRENCY, ([p, f]) =>
    mergePartition(store, p, f, new LakeLines(), [], Date.now()),
  );
  return (await writePartitions(store, merged, Promise.resolve(true))) as PartitionWrite[];
}

/** What reconcile reads of the lake: every row's key, quantity and total, duplicates included. */
export interface LakeLineTotal {
  invoiceNo: string;
  lineNo: number;
  quantity: number;
  /** Thousandths. */
  total: bigint;
  file: string;
}

export async function readLakeTotals(store: LakeStore): Promise<LakeLineTotal[]> {
  const files = [...(await listLakeFiles(store)).values()].flat();
  const out: LakeLineTotal[] = [];
  await mapLimit(files, PARTITION_CONCURRENCY, async (file) => {
    const { rowCount, columns } = await readParquetColumns(await getBytes(store, file), INVOICE_LINE_SCHEMA, [
      'invoice_no',
      'line_no',
      'quantity',
      'line_total',
    ]);
    for (let i = 0; i < rowCount; i++)
      out.push({
        invoiceNo: columns.invoice_no?.[i] as string,
        lineNo: Number(columns.line_no?.[i]),
        quantity: Number(columns.quantity?.[i]),
        total: BigInt(columns.line_total?.[i] as bigint),
        file,
      });
  });
  return out;
}
