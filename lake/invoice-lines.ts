import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { mapLimit } from '#adapters/retry';
import { type LeanColumn, writeLeanParquet } from './invoice-lines-parquet.ts';
import {
  boolean,
  decimal,
  instant,
  int32,
  localTimestamp,
  type ParquetSchema,
  readParquetColumns,
  string,
  writeParquetColumns,
  writeParquetColumnsOffThread,
} from './parquet.ts';

/**
 * The processed invoice lines: every line the loader accepted, as the warehouse fact has it, in
 * Parquet under `processed/invoice_lines/year=YYYY/month=MM/day=DD/` (the invoice's London
 * calendar day, dim_date's key). A partition holds one file after every write: a write merges its
 * lines into what the partition holds (a key already there is not written again; an archive line
 * lends the lineage times a key lacks, as the warehouse's MERGE does) and replaces the files it
 * read by one. docs/lake.md, "The processed invoice lines".
 */

export const INVOICE_LINES_PREFIX = 'processed/invoice_lines/';
/** The lake's own bookkeeping: hidden from crawlers and Athena by the leading underscore. */
export const LAKE_STATE_PREFIX = 'processed/_lake/invoice_lines/';

/** The fact's columns (names and types as fact_sales_line has them), less the warehouse's own stamp. */
export const INVOICE_LINE_SCHEMA: ParquetSchema = [
  { name: 'invoice_no', type: string, nullable: false },
  { name: 'line_no', type: int32, nullable: false },
  { name: 'date_key', type: int32, nullable: false },
  { name: 'invoice_date', type: localTimestamp, nullable: false },
  { name: 'stock_code', type: string, nullable: false },
  { name: 'description', type: string, nullable: true },
  { name: 'customer_id', type: string, nullable: true },
  { name: 'country_name', type: string, nullable: false },
  { name: 'quantity', type: int32, nullable: false },
  { name: 'unit_price', type: decimal(12, 3), nullable: false },
  { name: 'line_total', type: decimal(18, 3), nullable: false },
  { name: 'is_cancellation', type: boolean, nullable: false },
  { name: 'is_adjustment', type: boolean, nullable: false },
  { name: 'is_non_product', type: boolean, nullable: false },
  { name: 'is_duplicate_row', type: boolean, nullable: false },
  { name: 'produced_at', type: instant, nullable: true },
  { name: 'accepted_at', type: instant, nullable: true },
  { name: 'stream_visible_at', type: instant, nullable: true },
  { name: 'source', type: string, nullable: false },
  { name: 'source_key', type: string, nullable: false },
  /** When the line was first written to the lake (the lake's counterpart of warehouse_visible_at). */
  { name: 'lake_visible_at', type: instant, nullable: false },
];

/**
 * One accepted line as the loader's typer hands it over (batch/typer.ts's TypedLine has these
 * fields; the lake imports nothing from batch/). Times: `invoiceMs` the wall-clock time read as UTC,
 * the lineage times epoch ms.
 */
export interface LakeLineInput {
  invoiceNo: string;
  lineNo: number;
  dateKey: number;
  invoiceMs: number;
  stockCode: string;
  description: string | null;
  customerId: string | null;
  country: string;
  quantity: number;
  /** Unit price in thousandths. */
  price: number;
  isNonProduct: boolean;
  producedAt: number | null;
  acceptedAt: number | null;
  streamVisibleAt: number | null;
}

/** One source object version whose lines a write holds. */
export interface LakeSource {
  key: string;
  etag: string;
  source: 'stream' | 'file';
}

export class LakeError extends Error {
  override name = 'LakeError';
}

/**
 * Lines as columns (no object per line: the typer hands over one reused row object at a time).
 * Numbers stay numbers (a price in thousandths is exact below 2^53; a total is made a bigint only
 * when encoded), a missing time is NaN, so each numeric column stays an array of doubles: per line
 * no allocation but the pushes (a bigint per price and total cost the real file ~3 s, profiled).
 */
export class LakeLines {
  readonly invoiceNo: string[] = [];
  readonly lineNo: number[] = [];
  readonly dateKey: number[] = [];
  readonly invoiceMs: number[] = [];
  readonly stockCode: string[] = [];
  readonly description: Array<string | null> = [];
  readonly customerId: Array<string | null> = [];
  readonly country: string[] = [];
  readonly quantity: number[] = [];
  /** Unit price in thousandths. */
  readonly price: number[] = [];
  readonly nonProduct: boolean[] = [];
  readonly duplicate: boolean[] = [];
  /** Epoch ms; NaN: none. */
  readonly producedAt: number[] = [];
  readonly acceptedAt: number[] = [];
  readonly streamVisibleAt: number[] = [];
  readonly source: string[] = [];
  readonly sourceKey: string[] = [];
  /** Epoch ms; NaN until the line is first written. */
  readonly lakeVisibleAt: number[] = [];

  /**
   * One string object per distinct value: the typer makes new strings for every line, and kept as
   * they come 541,909 lines hold ~3.8 million of them, each promoted to the old generation and
   * traced by every collection (the real file's load spent seconds in the collector, profiled);
   * interned, the repeats die young and a few tens of thousands stay.
   */
  private readonly interned = new Map<string, string>();
  private intern(s: string): string {
    const known = this.interned.get(s);
    if (known !== undefined) return known;
    this.interned.set(s, s);
    return s;
  }

  get length(): number {
    return this.invoiceNo.length;
  }

  /** Appends one typed line of `source` (its lake time is set when it is first written). */
  add(line: LakeLineInput, source: string, sourceKey: string): void {
    this.invoiceNo.push(this.intern(line.invoiceNo));
    this.lineNo.push(line.lineNo);
    this.dateKey.push(line.dateKey);
    this.invoiceMs.push(line.invoiceMs);
    this.stockCode.push(this.intern(line.stockCode));
    this.description.push(line.description === null ? null : this.intern(line.description));
    this.customerId.push(line.customerId === null ? null : this.intern(line.customerId));
    this.country.push(this.intern(line.country));
    this.quantity.push(line.quantity);
    this.price.push(line.price);
    this.nonProduct.push(line.isNonProduct);
    this.duplicate.push(false);
    this.producedAt.push(line.producedAt ?? Number.NaN);
    this.acceptedAt.push(line.acceptedAt ?? Number.NaN);
    this.streamVisibleAt.push(line.streamVisibleAt ?? Number.NaN);
    this.source.push(source);
    this.sourceKey.push(sourceKey);
    this.lakeVisibleAt.push(Number.NaN);
  }

  /** Appends row `i` of `from`. */
  copyRow(from: LakeLines, i: number): void {
    for (const f of FIELDS) (this[f] as unknown[]).push(from[f][i]);
  }

  /** Drops the rows from `length` on (a half-read object). */
  truncate(length: number): void {
    for (const f of FIELDS) this[f].length = length;
  }
}

const FIELDS = [
  'invoiceNo',
  'lineNo',
  'dateKey',
  'invoiceMs',
  'stockCode',
  'description',
  'customerId',
  'country',
  'quantity',
  'price',
  'nonProduct',
  'duplicate',
  'producedAt',
  'acceptedAt',
  'streamVisibleAt',
  'source',
  'sourceKey',
  'lakeVisibleAt',
] as const;

/**
 * A RowEncoder for the loader's typer (batch/typer.ts's shape) that keeps the lines for the lake
 * and writes no bytes: the typer's rules, line numbers and rejections are the warehouse load's.
 */
export class LakeLineCollector {
  readonly columns: readonly string[] = [];
  readonly header = undefined;
  readonly trailer = undefined;
  private static readonly EMPTY = Buffer.alloc(0);
  constructor(
    readonly lines: LakeLines,
    private readonly source: LakeSource,
  ) {}
  write(line: LakeLineInput): void {
    this.lines.add(line, this.source.source, this.source.key);
  }
  take(): Buffer {
    return LakeLineCollector.EMPTY;
  }
}

// ----- partitions --------------------------------------------------------------------------------

/**
 * The partition of a date key (20111209 -> `year=2011/month=12/day=09/`): the invoice's calendar
 * day as the warehouse's dim_date numbers it. Invoice dates are London wall-clock times and stay
 * that way: no conversion to UTC, so a line at 00:30 on a summer-time day is on that day.
 */
export function partitionOf(dateKey: number): string {
  const y = Math.floor(dateKey / 10_000);
  const m = Math.floor(dateKey / 100) % 100;
  const d = dateKey % 100;
  const two = (n: number) => String(n).padStart(2, '0');
  return `year=${y}/month=${two(m)}/day=${two(d)}/`;
}

const PARTITION = /^year=(\d{4})\/month=(\d{2})\/day=(\d{2})\/$/;
/** The partition folder of a data file's key (undefined: not a data file of the table). */
function partitionOfKey(key: string): string | undefined {
  if (!key.startsWith(INVOICE_LINES_PREFIX) || !key.endsWith('.parquet')) return undefined;
  const rest = key.slice(INVOICE_LINES_PREFIX.length);
  const folder = rest.slice(0, rest.lastIndexOf('/') + 1);
  return PARTITION.test(folder) ? folder : undefined;
}

const lineKeyOf = (lines: LakeLines, i: number) => `${lines.invoiceNo[i]}#${lines.lineNo[i]}`;

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

/** Microseconds (a bigint as read) to ms; NaN: none. Times the lake writes are whole ms. */
const msOf = (micros: unknown) =>
  micros === null || micros === undefined ? Number.NaN : Number(BigInt(micros as bigint) / 1000n);

function priceOf(unscaled: unknown, file: string): number {
  const n = Number(unscaled);
  if (!Number.isSafeInteger(n))
    throw new LakeError(`${file}: a unit price of ${String(unscaled)} thousandths is past 2^53`);
  return n;
}

/** A data file's lines (every column), appended to `into`. */
export async function readLakeFile(
  store: LakeStore,
  key: string,
  into = new LakeLines(),
): Promise<LakeLines> {
  const { rowCount, columns: c } = await readParquetColumns(await getBytes(store, key), INVOICE_LINE_SCHEMA);
  const col = (name: string) => c[name] as unknown[];
  const [inv, ln, dk, idate, sc, desc, cust, ctry, qty, price, np, dup, pa, aa, sva, src, skey, lva] = [
    'invoice_no',
    'line_no',
    'date_key',
    'invoice_date',
    'stock_code',
    'description',
    'customer_id',
    'country_name',
    'quantity',
    'unit_price',
    'is_non_product',
    'is_duplicate_row',
    'produced_at',
    'accepted_at',
    'stream_visible_at',
    'source',
    'source_key',
    'lake_visible_at',
  ].map(col) as unknown[][];
  for (let i = 0; i < rowCount; i++) {
    into.invoiceNo.push(inv?.[i] as string);
    into.lineNo.push(Number(ln?.[i]));
    into.dateKey.push(Number(dk?.[i]));
    into.invoiceMs.push(msOf(idate?.[i]));
    into.stockCode.push(sc?.[i] as string);
    into.description.push((desc?.[i] as string | undefined) ?? null);
    into.customerId.push((cust?.[i] as string | undefined) ?? null);
    into.country.push(ctry?.[i] as string);
    into.quantity.push(Number(qty?.[i]));
    into.price.push(priceOf(price?.[i], key));
    into.nonProduct.push(Boolean(np?.[i]));
    into.duplicate.push(Boolean(dup?.[i]));
    into.producedAt.push(msOf(pa?.[i]));
    into.acceptedAt.push(msOf(aa?.[i]));
    into.streamVisibleAt.push(msOf(sva?.[i]));
    into.source.push(src?.[i] as string);
    into.sourceKey.push(skey?.[i] as string);
    into.lakeVisibleAt.push(msOf(lva?.[i]));
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
function mergeLines(existing: LakeLines, incoming: LakeLines, rows: readonly number[], now: number): Merged {
  const out = new LakeLines();
  const at = new Map<string, number>();
  let changed = false;
  let already = 0;
  const take = (from: LakeLines, i: number) => {
    const key = lineKeyOf(from, i);
    const kept = at.get(key);
    if (kept === undefined) {
      at.set(key, out.length);
      out.copyRow(from, i);
      return true;
    }
    for (const f of ['producedAt', 'acceptedAt', 'streamVisibleAt'] as const) {
      if (Number.isNaN(out[f][kept]) && !Number.isNaN(from[f][i])) {
        out[f][kept] = from[f][i] as number;
        changed = true;
      }
    }
    return false;
  };
  for (let i = 0; i < existing.length; i++) if (!take(existing, i)) changed = true; // two files held a key
  let added = 0;
  for (const i of rows) {
    if (take(incoming, i)) {
      added++;
      out.lakeVisibleAt[out.length - 1] = now;
    } else already++;
  }
  return { lines: out, added, already, changed: changed || added > 0 };
}

/**
 * Duplicate rows as the warehouse decides them (batch/sql.ts, duplicateFixStep): within an invoice,
 * a row with the same product, description, quantity, time, price, customer and country as one of
 * a lower line number. Equal times mean one day, so one partition sees all of a row's equals.
 */
function markDuplicates(lines: LakeLines, rows: readonly number[]): void {
  const lowest = new Map<string, number>();
  const signature = (i: number) =>
    `${lines.invoiceNo[i]}\u0001${lines.stockCode[i]}\u0001${lines.description[i] ?? '\u0000'}\u0001${lines.quantity[i]}\u0001${lines.invoiceMs[i]}\u0001${lines.price[i]}\u0001${lines.customerId[i] ?? '\u0000'}\u0001${lines.country[i]}`;
  const sigs: string[] = [];
  for (const i of rows) {
    const sig = signature(i);
    sigs.push(sig);
    const n = lines.lineNo[i] as number;
    const low = lowest.get(sig);
    if (low === undefined || n < low) lowest.set(sig, n);
  }
  rows.forEach((i, k) => {
    lines.duplicate[i] = (lines.lineNo[i] as number) > (lowest.get(sigs[k] as string) as number);
  });
}

const allRows = (lines: LakeLines) => Array.from({ length: lines.length }, (_, i) => i);

function before(lines: LakeLines, a: number, b: number): number {
  const t = (lines.invoiceMs[a] as number) - (lines.invoiceMs[b] as number);
  if (t !== 0) return t;
  const x = lines.invoiceNo[a] as string;
  const y = lines.invoiceNo[b] as string;
  if (x !== y) return x < y ? -1 : 1;
  return (lines.lineNo[a] as number) - (lines.lineNo[b] as number);
}

/**
 * Row order of a file: by invoice time, invoice and line (query engines read a day's rows in time
 * order; min/max statistics stay tight). Rows already in order (a file's rows mostly are) are not sorted.
 */
function sortedRows(lines: LakeLines, rows: readonly number[] = allRows(lines)): number[] {
  const order = [...rows];
  let sorted = true;
  for (let k = 1; k < order.length && sorted; k++)
    sorted = before(lines, order[k - 1] as number, order[k] as number) <= 0;
  if (!sorted) order.sort((a, b) => before(lines, a, b));
  return order;
}

const TEXT = new TextEncoder();

/** Strings as UTF-8 bytes, one Uint8Array per distinct value (writeParquetColumns says why). */
function bytesColumn(
  values: ReadonlyArray<string | null>,
  order: readonly number[],
): Array<Uint8Array | null> {
  const interned = new Map<string, Uint8Array>();
  const out = new Array<Uint8Array | null>(order.length);
  let last: string | null = null;
  let lastBytes: Uint8Array | null = null;
  for (let k = 0; k < order.length; k++) {
    const s = values[order[k] as number] ?? null;
    if (s !== last || lastBytes === null) {
      if (s === null) lastBytes = null;
      else {
        lastBytes = interned.get(s) ?? null;
        if (lastBytes === null) {
          lastBytes = TEXT.encode(s);
          interned.set(s, lastBytes);
        }
      }
      last = s;
    }
    out[k] = lastBytes;
  }
  return out;
}

/** Times in ms to microseconds (numbers: exact below 2^53, the writer makes them INT64); NaN: null. */
function microsColumn(values: readonly number[], order: readonly number[]): Array<number | null> {
  const out = new Array<number | null>(order.length);
  for (let k = 0; k < order.length; k++) {
    const v = values[order[k] as number] as number;
    out[k] = Number.isNaN(v) ? null : v * 1000;
  }
  return out;
}

function numbersColumn(values: readonly number[], order: readonly number[]): Int32Array {
  const out = new Int32Array(order.length);
  for (let k = 0; k < order.length; k++) out[k] = values[order[k] as number] as number;
  return out;
}

/** Prices and totals as unscaled bigints (DECIMAL(12,3) / (18,3)); a total past 2^53 multiplied as bigints. */
function moneyColumns(lines: LakeLines, order: readonly number[]): { price: bigint[]; total: bigint[] } {
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
export function encodeLakeLines(lines: LakeLines, order: readonly number[] = sortedRows(lines)): Uint8Array {
  return writeParquetColumns(INVOICE_LINE_SCHEMA, lakeColumns(lines, order), order.length);
}

/** One partition's file to encode: `rows` of `lines`, in that order (the file's row order). */
export interface LakePart {
  lines: LakeLines;
  rows: readonly number[];
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
 * encodeLakeLines (hyparquet-writer's generic path), several times faster (bench/lake.ts). Each file
 * is encoded on this thread and the event loop gets a turn between files.
 */
export const leanLakeEncoder: LakeEncoder = {
  async encode(parts) {
    const out: Uint8Array[] = [];
    for (const p of parts) {
      out.push(writeLeanParquet(INVOICE_LINE_SCHEMA, leanColumns(p.lines, p.rows), p.rows.length));
      await new Promise((resolve) => setImmediate(resolve));
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

/** The lines as the lean writer's columns, in `order`. */
export function leanColumns(lines: LakeLines, order: readonly number[]): LeanColumn[] {
  const n = order.length;
  const ints = (values: readonly number[]): LeanColumn => {
    const out = new Int32Array(n);
    for (let k = 0; k < n; k++) out[k] = values[order[k] as number] as number;
    return { kind: 'int32', values: out };
  };
  const times = (values: readonly number[]): LeanColumn => {
    const out = new Float64Array(n);
    for (let k = 0; k < n; k++) out[k] = (values[order[k] as number] as number) * 1000;
    return { kind: 'int64', values: out };
  };
  const flags = (test: (i: number) => boolean): LeanColumn => {
    const out = new Uint8Array(n);
    for (let k = 0; k < n; k++) out[k] = test(order[k] as number) ? 1 : 0;
    return { kind: 'boolean', values: out };
  };
  const price = new Float64Array(n);
  const total = new Float64Array(n);
  const exact = new Map<number, bigint>();
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const p = lines.price[i] as number;
    const q = lines.quantity[i] as number;
    price[k] = p;
    total[k] = p * q;
    // Past 2^53 thousandths a double is not exact: that total multiplied as bigints.
    if (!Number.isSafeInteger(total[k])) exact.set(k, BigInt(p) * BigInt(q));
  }
  return [
    stringsColumn(lines.invoiceNo, order),
    ints(lines.lineNo),
    ints(lines.dateKey),
    times(lines.invoiceMs),
    stringsColumn(lines.stockCode, order),
    stringsColumn(lines.description, order),
    stringsColumn(lines.customerId, order),
    stringsColumn(lines.country, order),
    ints(lines.quantity),
    { kind: 'int64', values: price },
    { kind: 'int64', values: total, exact },
    flags((i) => (lines.invoiceNo[i] as string).startsWith('C')),
    flags((i) => (lines.invoiceNo[i] as string).startsWith('A')),
    flags((i) => lines.nonProduct[i] as boolean),
    flags((i) => lines.duplicate[i] as boolean),
    times(lines.producedAt),
    times(lines.acceptedAt),
    times(lines.streamVisibleAt),
    stringsColumn(lines.source, order),
    stringsColumn(lines.sourceKey, order),
    times(lines.lakeVisibleAt),
  ];
}

/** A string column as dictionary ids in `order` (first seen, first numbered) and its values' UTF-8 bytes. */
function stringsColumn(values: ReadonlyArray<string | null>, order: readonly number[]): LeanColumn {
  const idOf = new Map<string, number>();
  const dictionary: Uint8Array[] = [];
  const ids = new Int32Array(order.length);
  let last: string | null | undefined;
  let lastId = -1;
  for (let k = 0; k < order.length; k++) {
    const s = values[order[k] as number] ?? null;
    if (s !== last) {
      last = s;
      if (s === null) lastId = -1;
      else {
        const known = idOf.get(s);
        if (known === undefined) {
          lastId = dictionary.length;
          idOf.set(s, lastId);
          dictionary.push(TEXT.encode(s));
        } else lastId = known;
      }
    }
    ids[k] = lastId;
  }
  return { kind: 'string', ids, dictionary };
}

/** The schema's columns of the lines, physical values in `order`. */
function lakeColumns(lines: LakeLines, order: readonly number[]): unknown[][] {
  const { price, total } = moneyColumns(lines, order);
  const flags = (test: (i: number) => boolean) => order.map(test);
  return [
    bytesColumn(lines.invoiceNo, order),
    numbersColumn(lines.lineNo, order) as unknown as unknown[],
    numbersColumn(lines.dateKey, order) as unknown as unknown[],
    microsColumn(lines.invoiceMs, order),
    bytesColumn(lines.stockCode, order),
    bytesColumn(lines.description, order),
    bytesColumn(lines.customerId, order),
    bytesColumn(lines.country, order),
    numbersColumn(lines.quantity, order) as unknown as unknown[],
    price,
    total,
    flags((i) => (lines.invoiceNo[i] as string).startsWith('C')),
    flags((i) => (lines.invoiceNo[i] as string).startsWith('A')),
    flags((i) => lines.nonProduct[i] as boolean),
    flags((i) => lines.duplicate[i] as boolean),
    microsColumn(lines.producedAt, order),
    microsColumn(lines.acceptedAt, order),
    microsColumn(lines.streamVisibleAt, order),
    bytesColumn(lines.source, order),
    bytesColumn(lines.sourceKey, order),
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

function distinctKeys(lines: LakeLines, rows: readonly number[]): boolean {
  const seen = new Set<string>();
  for (const i of rows) {
    const key = lineKeyOf(lines, i);
    if (seen.has(key)) return false;
    seen.add(key);
  }
  return true;
}

/** A partition merged and waiting for its file (undefined `part`: nothing to write). */
interface MergedPartition {
  partition: string;
  files: readonly string[];
  part?: LakePart;
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
  rows: readonly number[],
  now: number,
): Promise<MergedPartition> {
  const fresh = files.length === 0 ? distinctKeys(incoming, rows) : false;
  let merged: Merged;
  let kept: readonly number[];
  if (fresh) {
    // A new partition of lines with no key twice (a first load): nothing to merge, no copy.
    for (const i of rows) incoming.lakeVisibleAt[i] = now;
    merged = { lines: incoming, added: rows.length, already: 0, changed: rows.length > 0 };
    kept = rows;
  } else {
    const existing = new LakeLines();
    for (const f of files) await readLakeFile(store, f, existing);
    merged = mergeLines(existing, incoming, rows, now);
    kept = allRows(merged.lines);
  }
  const { added, already } = merged;
  if ((!merged.changed && files.length === 1) || kept.length === 0)
    return {
      partition,
      files,
      added: kept.length === 0 ? 0 : added,
      already: kept.length === 0 ? 0 : already,
    };
  markDuplicates(merged.lines, kept);
  return {
    partition,
    files,
    part: { lines: merged.lines, rows: sortedRows(merged.lines, kept) },
    added,
    already,
  };
}

/**
 * Encodes every merged partition's file in one call to the encoder, then per partition PUTs the file
 * and deletes the files it read (never one it did not read: a concurrent writer's file stays, and
 * the next merge folds it in). A crash between the write and the deletes leaves a key in two files
 * until the next write or compaction of the partition; reconcile reports it.
 */
async function writePartitions(
  store: LakeStore,
  merged: readonly MergedPartition[],
): Promise<PartitionWrite[]> {
  const parts = merged.flatMap((m) => (m.part ? [m.part] : []));
  const bytes = parts.length > 0 ? await (store.encoder ?? leanLakeEncoder).encode(parts) : [];
  if (bytes.length !== parts.length)
    throw new LakeError(`the encoder answered ${bytes.length} files for ${parts.length}`);
  let next = 0;
  const jobs = merged.map((m) => ({ m, bytes: m.part ? bytes[next++] : undefined }));
  return mapLimit(jobs, PUT_CONCURRENCY, async ({ m, bytes: file }) => {
    const { partition, added, already } = m;
    if (!file) return { partition, added, already, replaced: [] };
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
  });
}

export interface LakeWriteResult {
  lines: number;
  added: number;
  already: number;
  partitions: PartitionWrite[];
}

/** Partitions read at once (each a GET and a merge). */
const PARTITION_CONCURRENCY = 4;
/** Files PUT at once: a first load writes hundreds of small day files, each a round trip. */
const PUT_CONCURRENCY = 16;

/**
 * Writes lines into the lake, one merge per partition they touch: files sized by the partition
 * (a day of lines in one file), whatever the number of source objects the lines came from.
 */
export async function writeLakeLines(
  store: LakeStore,
  lines: LakeLines,
  options: { now?: number } = {},
): Promise<LakeWriteResult> {
  const now = options.now ?? Date.now();
  const byPartition = new Map<string, number[]>();
  let lastKey = -1;
  let last: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const dk = lines.dateKey[i] as number;
    if (dk !== lastKey) {
      const p = partitionOf(dk);
      let rows = byPartition.get(p);
      if (!rows) {
        rows = [];
        byPartition.set(p, rows);
      }
      last = rows;
      lastKey = dk;
    }
    last.push(i);
  }
  const files = byPartition.size > 0 ? await listLakeFiles(store) : new Map<string, string[]>();
  const merged = await mapLimit([...byPartition], PARTITION_CONCURRENCY, ([p, rows]) =>
    mergePartition(store, p, files.get(p) ?? [], lines, rows, now),
  );
  const partitions = await writePartitions(store, merged);
  return {
    lines: lines.length,
    added: partitions.reduce((n, p) => n + p.added, 0),
    already: partitions.reduce((n, p) => n + p.already, 0),
    partitions,
  };
}

/**
 * Compaction: every partition holding more than one file (a crashed or concurrent write) is merged
 * into one; one file already is left alone, so a second pass does nothing.
 */
export async function compactLake(store: LakeStore): Promise<PartitionWrite[]> {
  const files = await listLakeFiles(store);
  const many = [...files].filter(([, f]) => f.length > 1);
  const merged = await mapLimit(many, PARTITION_CONCURRENCY, ([p, f]) =>
    mergePartition(store, p, f, new LakeLines(), [], Date.now()),
  );
  return writePartitions(store, merged);
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
