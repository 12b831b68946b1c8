import {
  boolean,
  decimal,
  instant,
  int32,
  localTimestamp,
  type ParquetSchema,
  string,
} from '#adapters/parquet-writer';
import { moduleWorker, workerCalls } from '#adapters/worker-calls';
import { isAdjustmentInvoice, isCancellationInvoice } from '#core/enrich';
import { type LeanColumn, writeLeanParquet } from './invoice-lines-parquet.ts';
import {
  KeyIndex,
  type LakeLines,
  type LinesColumns,
  type LinesView,
  linesOfView,
  NO_STRING,
} from './lake-lines.ts';

/**
 * A partition's file of the processed invoice lines: the schema, its columns gathered from the
 * lines in the file's row order, and their encoding by the lean writer, on the lake's encoder
 * thread when there is one (./invoice-lines-files-thread.ts) or here. The thread reads the lines
 * where they are (LakeLines keeps its columns in shared memory): the loader's thread only posts
 * the row order, and gathers nothing.
 */

/** Row numbers of lines (an array, or a partition's Int32Array). */
export type Rows = ArrayLike<number>;

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

/** The lines as the lean writer's columns, in `order`. */
export function leanColumns(lines: LinesColumns, order: Rows): LeanColumn[] {
  const n = order.length;
  const ints = (values: Int32Array): LeanColumn => {
    const out = new Int32Array(n);
    for (let k = 0; k < n; k++) out[k] = values[order[k] as number] as number;
    return { kind: 'int32', values: out };
  };
  const times = (values: Float64Array): LeanColumn => {
    const out = new Float64Array(n);
    for (let k = 0; k < n; k++) out[k] = (values[order[k] as number] as number) * 1000;
    return { kind: 'int64', values: out };
  };
  const dictionaries = new FileDictionaries(lines.strings);
  const strings = (ids: Int32Array) => dictionaries.column(ids, order);
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
  const all = identity(n);
  return [
    strings(lines.invoiceNo),
    ints(lines.lineNo),
    repeating(lines.dateKey, order, 4) ?? ints(lines.dateKey),
    repeating(lines.invoiceMs, order, 8, 1000) ?? times(lines.invoiceMs),
    strings(lines.stockCode),
    strings(lines.description),
    strings(lines.customerId),
    strings(lines.country),
    repeating(lines.quantity, order, 4) ?? ints(lines.quantity),
    repeating(price, all, 8) ?? { kind: 'int64', values: price },
    (exact.size === 0 ? repeating(total, all, 8) : undefined) ?? { kind: 'int64', values: total, exact },
    ...flagColumns(lines, order).map((values): LeanColumn => ({ kind: 'boolean', values })),
    times(lines.producedAt),
    times(lines.acceptedAt),
    times(lines.streamVisibleAt),
    strings(lines.source),
    strings(lines.sourceKey),
    repeating(lines.lakeVisibleAt, order, 8, 1000) ?? times(lines.lakeVisibleAt),
  ];
}

/** 0, 1, ... n - 1 (a column already in file order). */
function identity(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let k = 0; k < n; k++) out[k] = k;
  return out;
}

/** Distinct values past which a numeric column is written PLAIN: ids of 16 bits are 2 bytes a row. */
const MAX_NUMBER_DICTIONARY = 1 << 16;

/**
 * A numeric column in `order` dictionary-encoded, for the columns whose values repeat (dates, prices,
 * quantities, totals, the write's lake time): the ids are bit-packed or run-length (an invoice's
 * lines share their date), smaller than the PLAIN values snappy-compressed and cheaper to make. A
 * run of one value costs no lookup. NaN is null. Values are whole, `scale` times each is stored (an
 * INT32 in `width` 4, an INT64 in 8, exact below 2^53). Undefined: too many distinct values, write
 * it PLAIN.
 */
function repeating(
  values: Int32Array | Float64Array,
  order: Rows,
  width: 4 | 8,
  scale = 1,
): LeanColumn | undefined {
  const n = order.length;
  const ids = new Int32Array(n);
  const index = new KeyIndex(1024);
  const distinct: number[] = [];
  let last = Number.NaN;
  let lastId = -1;
  for (let k = 0; k < n; k++) {
    const v = values[order[k] as number] as number;
    if (v === last) {
      ids[k] = lastId;
      continue;
    }
    if (Number.isNaN(v)) {
      ids[k] = -1;
      continue;
    }
    let id = index.add(v, distinct.length);
    if (id === undefined) {
      id = distinct.length;
      if (id >= MAX_NUMBER_DICTIONARY) return undefined;
      distinct.push(v);
    }
    ids[k] = id;
    last = v;
    lastId = id;
  }
  const dictionary = new Uint8Array(distinct.length * width);
  const view = new DataView(dictionary.buffer);
  for (let j = 0; j < distinct.length; j++) {
    const v = (distinct[j] as number) * scale;
    if (width === 4) view.setInt32(j * 4, v, true);
    else {
      const hi = Math.floor(v / 4294967296);
      view.setUint32(j * 8, v - hi * 4294967296, true);
      view.setInt32(j * 8 + 4, hi, true);
    }
  }
  return { kind: 'dictionary', ids, dictionary, count: distinct.length };
}

/**
 * The schema's four flag columns in `order`, in its order (is_cancellation, is_adjustment,
 * is_non_product, is_duplicate_row), 1 or 0 per row: the two invoice rules asked once per distinct
 * invoice (answers kept by string id), the other two copied from the lines.
 */
export function flagColumns(lines: LinesColumns, order: Rows): Uint8Array[] {
  const n = order.length;
  const cancellation = new Uint8Array(n);
  const adjustment = new Uint8Array(n);
  const nonProduct = new Uint8Array(n);
  const duplicate = new Uint8Array(n);
  // Per invoice id: 0 not asked yet, else 1 + (cancellation ? 1 : 0) + (adjustment ? 2 : 0).
  const known = new Uint8Array(lines.strings.size);
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const id = lines.invoiceNo[i] as number;
    let answer = known[id] as number;
    if (answer === 0) {
      const invoiceNo = lines.strings.text(id);
      answer = 1 + (isCancellationInvoice(invoiceNo) ? 1 : 0) + (isAdjustmentInvoice(invoiceNo) ? 2 : 0);
      known[id] = answer;
    }
    cancellation[k] = (answer - 1) & 1;
    adjustment[k] = ((answer - 1) >> 1) & 1;
    nonProduct[k] = lines.nonProduct[i] as number;
    duplicate[k] = lines.duplicate[i] as number;
  }
  return [cancellation, adjustment, nonProduct, duplicate];
}

/**
 * A file's string columns as dictionary ids: the table's ids renumbered per column, first seen
 * first numbered, through one reused array (no lookup per row); values' bytes from the table.
 */
class FileDictionaries {
  private readonly local: Int32Array;
  constructor(private readonly strings: LinesColumns['strings']) {
    this.local = new Int32Array(strings.size).fill(-1);
  }
  column(ids: Int32Array, order: Rows): LeanColumn {
    const out = new Int32Array(order.length);
    const seen: number[] = [];
    for (let k = 0; k < order.length; k++) {
      const id = ids[order[k] as number] as number;
      if (id === NO_STRING) {
        out[k] = -1;
        continue;
      }
      let local = this.local[id] as number;
      if (local === -1) {
        local = seen.length;
        this.local[id] = local;
        seen.push(id);
      }
      out[k] = local;
    }
    for (const id of seen) this.local[id] = -1;
    return {
      kind: 'dictionary',
      ids: out,
      dictionary: this.strings.plain(seen),
      count: seen.length,
    };
  }
}

/** A partition's file, made on this thread: `order`'s rows of the lines, in that order. */
export function encodeLakeFileHere(lines: LinesColumns, order: Rows): Uint8Array {
  return writeLeanParquet(INVOICE_LINE_SCHEMA, leanColumns(lines, order), order.length);
}

/** What the encoder thread is sent for a file (./invoice-lines-files-thread.ts). */
export interface LakeFileJob {
  lines: LinesView;
  order: Int32Array;
}

/** The encoder thread's side: a job's file, the lines read where they are. */
export function encodeLakeFileJob(job: LakeFileJob): Uint8Array {
  return encodeLakeFileHere(linesOfView(job.lines), job.order);
}

const thread = (() => {
  const start = moduleWorker(new URL('./invoice-lines-files-thread.ts', import.meta.url));
  return (
    start && workerCalls<Uint8Array>(start, (message) => new Error(`the lean Parquet encoder: ${message}`))
  );
})();
let threadFailed = false;
/** Below this many rows a file is encoded here: under a millisecond, less than the trip to the thread. */
const OFF_THREAD_ROWS = 1000;

/** Where encodeLakeFile encodes: its thread, or this thread (none here, or the thread failed). */
export function leanEncoderWhere(): 'thread' | 'here, no thread' | 'here, the thread failed' {
  return !thread ? 'here, no thread' : threadFailed ? 'here, the thread failed' : 'thread';
}

/** Starts the encoder thread (a sink that will write does, so its first file waits for no start-up). */
export function startLeanEncoder(): void {
  if (thread && !threadFailed) thread.start();
}

/**
 * encodeLakeFileHere's bytes, made on the encoder thread so this thread's event loop stays free
 * (the loader's commit and the API go on meanwhile): the thread reads the lines' shared columns, so
 * they must not change until the answer. If the thread fails (or there is none, as in a Lambda
 * bundle) the file is made here, and a process whose thread failed makes them here from then on; a
 * column the writer refuses is thrown as it would be here.
 */
export async function encodeLakeFile(lines: LakeLines, order: Rows): Promise<Uint8Array> {
  if (thread && !threadFailed && order.length >= OFF_THREAD_ROWS) {
    const job: LakeFileJob = {
      lines: lines.view(),
      order: order instanceof Int32Array ? order : Int32Array.from(order),
    };
    try {
      return await thread.call(job as unknown as Record<string, unknown>);
    } catch {
      // The same file here: a column the writer refuses throws again (the thread is not at fault
      // and stays in use); when it encodes here, the thread was: this process stops using it.
      const bytes = encodeLakeFileHere(lines, order);
      threadFailed = true;
      return bytes;
    }
  }
  return encodeLakeFileHere(lines, order);
}
