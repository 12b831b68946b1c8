import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { mapLimit } from '#adapters/retry';
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
 * Money in thousandths as bigint, times in ms (null: none).
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
  readonly price: bigint[] = [];
  readonly total: bigint[] = [];
  readonly nonProduct: boolean[] = [];
  readonly duplicate: boolean[] = [];
  readonly producedAt: Array<number | null> = [];
  readonly acceptedAt: Array<number | null> = [];
  readonly streamVisibleAt: Array<number | null> = [];
  readonly source: string[] = [];
  readonly sourceKey: string[] = [];
  readonly lakeVisibleAt: Array<number | null> = [];
  private lastPrice = -1;
  private lastPriceBig = 0n;

  get length(): number {
    return this.invoiceNo.length;
  }

  /** Appends one typed line of `source` (its lake time is set when it is first written). */
  add(line: LakeLineInput, source: string, sourceKey: string): void {
    this.invoiceNo.push(line.invoiceNo);
    this.lineNo.push(line.lineNo);
    this.dateKey.push(line.dateKey);
    this.invoiceMs.push(line.invoiceMs);
    this.stockCode.push(line.stockCode);
    this.description.push(line.description);
    this.customerId.push(line.customerId);
    this.country.push(line.country);
    this.quantity.push(line.quantity);
    if (line.price !== this.lastPrice) {
      this.lastPrice = line.price;
      this.lastPriceBig = BigInt(line.price);
    }
    this.price.push(this.lastPriceBig);
    this.total.push(BigInt(line.quantity) * this.lastPriceBig);
    this.nonProduct.push(line.isNonProduct);
    this.duplicate.push(false);
    this.producedAt.push(line.producedAt);
    this.acceptedAt.push(line.acceptedAt);
    this.streamVisibleAt.push(line.streamVisibleAt);
    this.source.push(source);
    this.sourceKey.push(sourceKey);
    this.lakeVisibleAt.push(null);
  }

  /** Appends row `i` of `from`. */
  copyRow(from: LakeLines, i: number): void {
    for (const f of FIELDS) (this[f] as unknown[]).push(from[f][i]);
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
  'total',
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

const BIG_ZERO = 0n;
const asNumber = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const msOf = (micros: unknown) =>
  micros === null || micros === undefined ? null : Number(BigInt(micros as bigint) / 1000n);

/** A data file's lines (every column), appended to `into`. */
export async function readLakeFile(
  store: LakeStore,
  key: string,
  into = new LakeLines(),
): Promise<LakeLines> {
  const { rowCount, columns: c } = await readParquetColumns(await getBytes(store, key), INVOICE_LINE_SCHEMA);
  const col = (name: string) => c[name] as unknown[];
  const [inv, ln, dk, idate, sc, desc, cust, ctry, qty, price, total, np, dup, pa, aa, sva, src, skey, lva] =
    [
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
      'line_total',
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
    into.invoiceMs.push(msOf(idate?.[i]) as number);
    into.stockCode.push(sc?.[i] as string);
    into.description.push((desc?.[i] as string | undefined) ?? null);
    into.customerId.push((cust?.[i] as string | undefined) ?? null);
    into.country.push(ctry?.[i] as string);
    into.quantity.push(Number(qty?.[i]));
    into.price.push(BigInt((price?.[i] as bigint | undefined) ?? BIG_ZERO));
    into.total.push(BigInt((total?.[i] as bigint | undefined) ?? BIG_ZERO));
    into.nonProduct.push(Boolean(np?.[i]));
    into.duplicate.push(Boolean(dup?.[i]));
    into.producedAt.push(msOf(pa?.[i]));
    into.acceptedAt.push(msOf(aa?.[i]));
    into.streamVisibleAt.push(msOf(sva?.[i]));
    into.source.push(src?.[i] as string);
    into.sourceKey.push(skey?.[i] as string);
    into.lakeVisibleAt.push(asNumber(msOf(lva?.[i])));
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
      if (out[f][kept] === null && from[f][i] !== null) {
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
function markDuplicates(lines: LakeLines, order: readonly number[]): void {
  const seen = new Set<string>();
  for (const i of order) {
    const sig = [
      lines.invoiceNo[i],
      lines.stockCode[i],
      lines.description[i] ?? '\u0000',
      lines.quantity[i],
      lines.invoiceMs[i],
      lines.price[i],
      lines.customerId[i] ?? '\u0000',
      lines.country[i],
    ].join('\u0001');
    lines.duplicate[i] = seen.has(sig);
    seen.add(sig);
  }
}

/** Row order of a file: by invoice time, invoice and line (also the duplicate rule's order). */
function sortedRows(lines: LakeLines): number[] {
  const order = Array.from({ length: lines.length }, (_, i) => i);
  order.sort(
    (a, b) =>
      (lines.invoiceMs[a] as number) - (lines.invoiceMs[b] as number) ||
      ((lines.invoiceNo[a] as string) < (lines.invoiceNo[b] as string)
        ? -1
        : (lines.invoiceNo[a] as string) > (lines.invoiceNo[b] as string)
          ? 1
          : (lines.lineNo[a] as number) - (lines.lineNo[b] as number)),
  );
  return order;
}

const TEXT = new TextEncoder();

/** The lines as Parquet bytes, in `order`; strings go as interned UTF-8 (writeParquetColumns says why). */
export function encodeLakeLines(lines: LakeLines, order: readonly number[] = sortedRows(lines)): Uint8Array {
  const interned = new Map<string, Uint8Array>();
  const bytes = (s: string | null) => {
    if (s === null) return null;
    let b = interned.get(s);
    if (b === undefined) {
      b = TEXT.encode(s);
      interned.set(s, b);
    }
    return b;
  };
  const micros = (ms: number | null | undefined) =>
    ms === null || ms === undefined ? null : BigInt(ms) * 1000n;
  const pick = <T, R>(values: readonly T[], f: (v: T) => R) => order.map((i) => f(values[i] as T));
  const same = <T>(v: T) => v;
  const columns: unknown[][] = [
    pick(lines.invoiceNo, bytes),
    pick(lines.lineNo, same),
    pick(lines.dateKey, same),
    pick(lines.invoiceMs, micros),
    pick(lines.stockCode, bytes),
    pick(lines.description, bytes),
    pick(lines.customerId, bytes),
    pick(lines.country, bytes),
    pick(lines.quantity, same),
    pick(lines.price, same),
    pick(lines.total, same),
    pick(lines.invoiceNo, (n) => n.startsWith('C')),
    pick(lines.invoiceNo, (n) => n.startsWith('A')),
    pick(lines.nonProduct, same),
    pick(lines.duplicate, same),
    pick(lines.producedAt, micros),
    pick(lines.acceptedAt, micros),
    pick(lines.streamVisibleAt, micros),
    pick(lines.source, bytes),
    pick(lines.sourceKey, bytes),
    pick(lines.lakeVisibleAt, micros),
  ];
  return writeParquetColumns(INVOICE_LINE_SCHEMA, columns, order.length);
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
 * Merges `rows` of `incoming` into one partition: reads the files it holds, writes the merged lines
 * as one file, then deletes the files it read (never one it did not read: a concurrent writer's
 * file stays, and the next merge folds it in). A crash between the write and the deletes leaves a
 * key in two files until the next write or compaction of the partition; reconcile reports it.
 */
export async function mergePartition(
  store: LakeStore,
  partition: string,
  files: readonly string[],
  incoming: LakeLines,
  rows: readonly number[],
  now: number,
): Promise<PartitionWrite> {
  const existing = new LakeLines();
  for (const f of files) await readLakeFile(store, f, existing);
  const merged = mergeLines(existing, incoming, rows, now);
  if (!merged.changed && files.length === 1)
    return { partition, added: 0, already: merged.already, replaced: [] };
  if (merged.lines.length === 0) return { partition, added: 0, already: 0, replaced: [] };
  const order = sortedRows(merged.lines);
  markDuplicates(merged.lines, order);
  const bytes = encodeLakeLines(merged.lines, order);
  const file = dataFileKey(partition, bytes);
  await store.s3.send(
    new PutObjectCommand({
      Bucket: store.bucket,
      Key: file,
      Body: bytes,
      ContentType: 'application/vnd.apache.parquet',
    }),
  );
  const replaced = files.filter((f) => f !== file);
  for (const f of replaced) await store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: f }));
  return { partition, file, added: merged.added, already: merged.already, replaced };
}

export interface LakeWriteResult {
  lines: number;
  added: number;
  already: number;
  partitions: PartitionWrite[];
}

/** Partitions written at once (each is a read, an encode and a PUT). */
const PARTITION_CONCURRENCY = 4;

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
  const partitions = await mapLimit([...byPartition], PARTITION_CONCURRENCY, ([p, rows]) =>
    mergePartition(store, p, files.get(p) ?? [], lines, rows, now),
  );
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
  return mapLimit(many, PARTITION_CONCURRENCY, ([p, f]) =>
    mergePartition(store, p, f, new LakeLines(), [], Date.now()),
  );
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
