import { RULES } from '#core/rules';

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
  /**
   * The typer's verdict (the warehouse's rule, batch/typer.ts): the same values as a line of the
   * invoice's run before it. Undefined: not decided, the lake decides (LakeLines.unsettled).
   */
  isDuplicateRow?: boolean;
  producedAt: number | null;
  acceptedAt: number | null;
  streamVisibleAt: number | null;
  /**
   * The typer's own ids of the stock code and description (one per distinct value within one
   * typer's object; the description's names '' when there is none): with a TyperIds cache they spare
   * a string lookup per line.
   */
  stockId?: number;
  descriptionId?: number;
  /** The typer's ids of the customer (-1: none) and the country, as the stock code's. */
  customerNo?: number;
  countryNo?: number;
}

/** Table ids by the typer's ids, for the lines of one typer (one object attempt). */
export interface TyperIds {
  stock: number[];
  description: number[];
  customer: number[];
  country: number[];
}

const TEXT = new TextEncoder();

/** A typed array over shared memory: another thread sees it without a copy (LakeLines.view). */
function shared<T extends Int32Array | Float64Array | Uint8Array>(
  kind: { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number },
  length: number,
): T {
  return new kind(new SharedArrayBuffer(length * kind.BYTES_PER_ELEMENT));
}

/** A string table's values as another thread reads them (StringTable.view, StringBytes). */
export interface SharedStrings {
  size: number;
  /** Every value's UTF-8, at `starts[id]`, `lengths[id]` bytes long. */
  arena: Uint8Array;
  starts: Int32Array;
  lengths: Int32Array;
}

/** The values PLAIN-encoded, in order: a 4-byte little-endian length, then the bytes, each. */
function plainOf(t: SharedStrings, ids: ArrayLike<number>): Uint8Array {
  const { arena, starts, lengths } = t;
  let size = 0;
  for (let k = 0; k < ids.length; k++) size += 4 + (lengths[ids[k] as number] as number);
  const out = new Uint8Array(size);
  let to = 0;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k] as number;
    const n = lengths[id] as number;
    const from = starts[id] as number;
    out[to] = n & 0xff;
    out[to + 1] = (n >>> 8) & 0xff;
    out[to + 2] = (n >>> 16) & 0xff;
    out[to + 3] = n >>> 24;
    to += 4;
    // Most values are a few bytes: a loop costs less than a subarray and a set() each.
    if (n < 64) for (let b = 0; b < n; b++) out[to + b] = arena[from + b] as number;
    else out.set(arena.subarray(from, from + n), to);
    to += n;
  }
  return out;
}

/**
 * The strings of a family of LakeLines (lines merged together share one table), each stored once
 * and numbered: a row holds ids, so a line costs no string object, comparing two keys is comparing
 * numbers, and each distinct value is made UTF-8 once however many files it lands in. The UTF-8 of
 * all values lives in one array of shared memory (`arena`, offsets by id), made when first asked
 * for: a dictionary page is copied out of it, with no array object per value (~40,000 of them for
 * the real file), and the lake's encoder thread reads it where it is (view()).
 */
export class StringTable {
  readonly values: string[] = [];
  private readonly ids = new Map<string, number>();
  private arena = shared(Uint8Array, 1 << 16);
  private used = 0;
  /** Per id, where its UTF-8 starts in `arena` and its length. */
  private starts = shared(Int32Array, 1024);
  private lengths = shared(Int32Array, 1024);
  /** Ids below this have their UTF-8 made (in id order, when first asked for: not while typing). */
  private made = 0;

  get size(): number {
    return this.values.length;
  }

  id(s: string): number {
    const known = this.ids.get(s);
    if (known !== undefined) return known;
    const id = this.values.length;
    this.values.push(s);
    this.ids.set(s, id);
    return id;
  }

  text(id: number): string {
    return this.values[id] as string;
  }

  /** The value's UTF-8 bytes (a view of the table's array: made once, shared by every file). */
  bytes(id: number): Uint8Array {
    this.makeUtf8(id + 1);
    const at = this.starts[id] as number;
    return this.arena.subarray(at, at + (this.lengths[id] as number));
  }

  /** The values PLAIN-encoded, in order: a 4-byte little-endian length, then the bytes, each. */
  plain(ids: ArrayLike<number>): Uint8Array {
    return plainOf(this.view(), ids);
  }

  /** The table as it is now, for another thread (values added later are not in it). */
  view(): SharedStrings {
    this.makeUtf8(this.size);
    return { size: this.size, arena: this.arena, starts: this.starts, lengths: this.lengths };
  }

  /** Makes the UTF-8 of every value below id `upTo` that has none yet. */
  private makeUtf8(upTo: number): void {
    for (; this.made < upTo; this.made++) this.utf8(this.made, this.values[this.made] as string);
  }

  /** Makes value `id`'s UTF-8 at the arena's end. */
  private utf8(id: number, s: string): void {
    if (id >= this.starts.length) {
      const starts = shared(Int32Array, this.starts.length * 2);
      starts.set(this.starts);
      const lengths = shared(Int32Array, starts.length);
      lengths.set(this.lengths);
      this.starts = starts;
      this.lengths = lengths;
    }
    // At most 3 bytes per UTF-16 unit.
    if (this.used + s.length * 3 > this.arena.length) {
      const arena = shared(Uint8Array, Math.max(this.arena.length * 2, this.used + s.length * 3));
      arena.set(this.arena.subarray(0, this.used));
      this.arena = arena;
    }
    const at = this.used;
    let n = 0;
    // ASCII (nearly every value) byte by byte; anything else by the encoder.
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      this.arena[at + n] = c;
    }
    if (n < s.length) n = TEXT.encodeInto(s, this.arena.subarray(at)).written;
    this.starts[id] = at;
    this.lengths[id] = n;
    this.used = at + n;
  }
}

/** A StringTable's values on another thread: their bytes, their text decoded when asked. */
export class StringBytes {
  constructor(private readonly table: SharedStrings) {}
  get size(): number {
    return this.table.size;
  }
  text(id: number): string {
    const { arena, starts, lengths } = this.table;
    const at = (starts[id] as number) + arena.byteOffset;
    return Buffer.from(arena.buffer, at, lengths[id] as number).toString('utf8');
  }
  plain(ids: ArrayLike<number>): Uint8Array {
    return plainOf(this.table, ids);
  }
}

/** No string (a null description or customer). */
export const NO_STRING = -1;

const ID_COLUMNS = [
  'invoiceNo',
  'stockCode',
  'description',
  'customerId',
  'country',
  'source',
  'sourceKey',
] as const;
const INT_COLUMNS = ['lineNo', 'dateKey', 'quantity'] as const;
const TIME_COLUMNS = [
  'invoiceMs',
  'price',
  'producedAt',
  'acceptedAt',
  'streamVisibleAt',
  'lakeVisibleAt',
] as const;
const FLAG_COLUMNS = ['nonProduct', 'duplicate'] as const;

const COLUMNS = [...ID_COLUMNS, ...INT_COLUMNS, ...TIME_COLUMNS, ...FLAG_COLUMNS] as const;

type ColumnName = (typeof COLUMNS)[number];

/** The columns of lines and their strings: LakeLines, or its view on another thread (linesOfView). */
export type LinesColumns = Pick<LakeLines, ColumnName> & {
  strings: Pick<StringTable, 'size' | 'text' | 'plain'>;
};

/** LakeLines as another thread receives them (LakeLines.view): the same shared memory, no copy. */
export type LinesView = Pick<LakeLines, ColumnName | 'length'> & { strings: SharedStrings };

/** The lines of a view, read on the thread that received it. */
export function linesOfView(view: LinesView): LinesColumns {
  return { ...view, strings: new StringBytes(view.strings) };
}

/** A set of column arrays of one capacity. */
type Spare = { capacity: number } & Record<
  (typeof ID_COLUMNS)[number] | (typeof INT_COLUMNS)[number],
  Int32Array
> &
  Record<(typeof TIME_COLUMNS)[number], Float64Array> &
  Record<(typeof FLAG_COLUMNS)[number], Uint8Array>;

/**
 * Column memory of released lines, kept for the next big lines (a loader's next object): the
 * first touch of fresh memory costs a page fault per 4 KB, and a whole file's columns grown
 * afresh cost its typing ~0.2 s, measured on the real file (~0.1 s with the memory reused). At most
 * MAX_SPARE sets, the largest kept; sets smaller than MIN_SPARE rows are not worth keeping.
 */
const spares: Spare[] = [];
const MAX_SPARE = 2;
const MIN_SPARE = 1 << 16;

function takeSpare(capacity: number): Spare | undefined {
  let best = -1;
  for (let k = 0; k < spares.length; k++)
    if (
      (spares[k] as Spare).capacity >= capacity &&
      (best < 0 || (spares[k] as Spare).capacity < (spares[best] as Spare).capacity)
    )
      best = k;
  return best < 0 ? undefined : spares.splice(best, 1)[0];
}

function giveSpare(set: Spare): void {
  spares.push(set);
  spares.sort((a, b) => b.capacity - a.capacity);
  spares.length = Math.min(spares.length, MAX_SPARE);
}

/** Key of a line (invoice, line number) as one number: line numbers stop at RULES.lineNo.max. */
const LINE_SPAN = RULES.lineNo.max + 1;

/**
 * Lines as columns of typed arrays: a line added is a few stores, no object and no string kept per
 * line (the typer makes new strings for every line; they die young). The columns grow fourfold: each
 * growth copies every column into new memory (the real file's lines grew ten times by doubling,
 * ~0.2 s, profiled). String
 * columns hold ids into `strings` (NO_STRING: null); numbers stay numbers (a price in thousandths is
 * exact below 2^53; a total is made exact only when encoded); a missing time is NaN.
 */
export class LakeLines {
  length = 0;
  private capacity: number;
  invoiceNo: Int32Array;
  stockCode: Int32Array;
  description: Int32Array;
  customerId: Int32Array;
  country: Int32Array;
  source: Int32Array;
  sourceKey: Int32Array;
  lineNo: Int32Array;
  dateKey: Int32Array;
  quantity: Int32Array;
  /** The invoice's wall-clock time read as UTC, epoch ms. */
  invoiceMs: Float64Array;
  /** Unit price in thousandths. */
  price: Float64Array;
  /** Epoch ms; NaN: none. */
  producedAt: Float64Array;
  acceptedAt: Float64Array;
  streamVisibleAt: Float64Array;
  /** Epoch ms; NaN until the line is first written. */
  lakeVisibleAt: Float64Array;
  nonProduct: Uint8Array;
  duplicate: Uint8Array;

  /**
   * Whether every line came through add() with the typer's duplicate verdict (see `unsettled`);
   * any other way of adding lines turns it off.
   */
  private verdicts = true;
  /** The run of lines add() is in: its invoice's id (NO_STRING: none yet) and last line number. */
  private runInvoice = NO_STRING;
  private runLineNo = 0;
  /** Per invoice id: 1 its lines came as one run of rising line numbers so far, 2 they did not. */
  private runState = new Uint8Array(1024);
  /** Invoices whose state is 2. */
  private unsettledInvoices = 0;

  /** Per string column, the last value added and its id: an invoice's lines repeat theirs. */
  private readonly lastText: Array<string | null> = ID_COLUMNS.map(() => null);
  private readonly lastId = new Int32Array(ID_COLUMNS.length).fill(NO_STRING);

  constructor(
    readonly strings = new StringTable(),
    capacity = 4096,
  ) {
    const spare = capacity >= MIN_SPARE ? takeSpare(capacity) : undefined;
    this.capacity = spare?.capacity ?? capacity;
    this.invoiceNo = spare?.invoiceNo ?? shared(Int32Array, capacity);
    this.stockCode = spare?.stockCode ?? shared(Int32Array, capacity);
    this.description = spare?.description ?? shared(Int32Array, capacity);
    this.customerId = spare?.customerId ?? shared(Int32Array, capacity);
    this.country = spare?.country ?? shared(Int32Array, capacity);
    this.source = spare?.source ?? shared(Int32Array, capacity);
    this.sourceKey = spare?.sourceKey ?? shared(Int32Array, capacity);
    this.lineNo = spare?.lineNo ?? shared(Int32Array, capacity);
    this.dateKey = spare?.dateKey ?? shared(Int32Array, capacity);
    this.quantity = spare?.quantity ?? shared(Int32Array, capacity);
    this.invoiceMs = spare?.invoiceMs ?? shared(Float64Array, capacity);
    this.price = spare?.price ?? shared(Float64Array, capacity);
    this.producedAt = spare?.producedAt ?? shared(Float64Array, capacity);
    this.acceptedAt = spare?.acceptedAt ?? shared(Float64Array, capacity);
    this.streamVisibleAt = spare?.streamVisibleAt ?? shared(Float64Array, capacity);
    this.lakeVisibleAt = spare?.lakeVisibleAt ?? shared(Float64Array, capacity);
    this.nonProduct = spare?.nonProduct ?? shared(Uint8Array, capacity);
    this.duplicate = spare?.duplicate ?? shared(Uint8Array, capacity);
  }

  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    let capacity = Math.max(this.capacity * 4, 16);
    while (capacity < rows) capacity *= 4;
    const spare = capacity >= MIN_SPARE ? takeSpare(capacity) : undefined;
    const grown = <T extends Int32Array | Float64Array | Uint8Array>(a: T, into?: T): T => {
      const out =
        into ??
        shared(a.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number }, capacity);
      out.set(a.subarray(0, this.length));
      return out;
    };
    for (const c of ID_COLUMNS) this[c] = grown(this[c], spare?.[c]);
    for (const c of INT_COLUMNS) this[c] = grown(this[c], spare?.[c]);
    for (const c of TIME_COLUMNS) this[c] = grown(this[c], spare?.[c]);
    for (const c of FLAG_COLUMNS) this[c] = grown(this[c], spare?.[c]);
    this.capacity = spare?.capacity ?? capacity;
  }

  /**
   * Gives the columns' memory to the next lines that grow this big (see `spares`) and leaves these
   * lines empty: the caller must hold no row of them any more.
   */
  release(): void {
    if (this.capacity >= MIN_SPARE) {
      const set = { capacity: this.capacity } as Spare;
      for (const c of COLUMNS) (set as Record<string, unknown>)[c] = this[c];
      giveSpare(set);
    }
    this.length = 0;
    this.capacity = 0;
    for (const c of ID_COLUMNS) this[c] = new Int32Array(0);
    for (const c of INT_COLUMNS) this[c] = new Int32Array(0);
    for (const c of TIME_COLUMNS) this[c] = new Float64Array(0);
    for (const c of FLAG_COLUMNS) this[c] = new Uint8Array(0);
  }

  /**
   * The lines for another thread (a structured clone of it shares the columns' memory): they must
   * not change until that thread is done with them.
   */
  view(): LinesView {
    const out = { length: this.length, strings: this.strings.view() } as LinesView;
    for (const c of COLUMNS) (out as Record<string, unknown>)[c] = this[c];
    return out;
  }

  /** The id of `s` in string column number `c` (a repeat of the column's last value costs no lookup). */
  private idOf(c: number, s: string | null): number {
    if (s === null) return NO_STRING;
    if (this.lastText[c] === s) return this.lastId[c] as number;
    const id = this.strings.id(s);
    this.lastText[c] = s;
    this.lastId[c] = id;
    return id;
  }

  /** A string value of row `i` (null: none). */
  text(column: (typeof ID_COLUMNS)[number], i: number): string | null {
    const id = this[column][i] as number;
    return id === NO_STRING ? null : this.strings.text(id);
  }

  /** The number naming row `i`'s key (invoice, line number) among lines sharing this table. */
  keyOf(i: number): number {
    return (this.invoiceNo[i] as number) * LINE_SPAN + (this.lineNo[i] as number);
  }

  /** The table id of a value the typer numbered `typerId` (`known` caches it per typer). */
  private viaTyper(
    c: number,
    s: string | null,
    typerId: number | undefined,
    known: number[] | undefined,
  ): number {
    if (s === null || typerId === undefined || known === undefined) return this.idOf(c, s);
    let id = known[typerId];
    if (id === undefined) {
      id = this.idOf(c, s);
      known[typerId] = id;
    }
    return id;
  }

  /**
   * Appends one typed line of `source` (its lake time is set when it is first written). `known`:
   * the table ids of the typer's ids, for lines of one typer only.
   */
  add(line: LakeLineInput, source: string, sourceKey: string, known?: TyperIds): void {
    if (this.length === this.capacity) this.reserve(this.length + 1);
    const i = this.length++;
    const invoice = this.idOf(0, line.invoiceNo);
    this.invoiceNo[i] = invoice;
    if (invoice !== this.runInvoice) this.newRun(invoice);
    else if (line.lineNo <= this.runLineNo) this.unsettle(invoice);
    this.runLineNo = line.lineNo;
    this.stockCode[i] = this.viaTyper(1, line.stockCode, line.stockId, known?.stock);
    this.description[i] = this.viaTyper(2, line.description, line.descriptionId, known?.description);
    this.customerId[i] = this.viaTyper(3, line.customerId, line.customerNo, known?.customer);
    this.country[i] = this.viaTyper(4, line.country, line.countryNo, known?.country);
    this.source[i] = this.idOf(5, source);
    this.sourceKey[i] = this.idOf(6, sourceKey);
    this.lineNo[i] = line.lineNo;
    this.dateKey[i] = line.dateKey;
    this.quantity[i] = line.quantity;
    this.invoiceMs[i] = line.invoiceMs;
    this.price[i] = line.price;
    this.producedAt[i] = line.producedAt ?? Number.NaN;
    this.acceptedAt[i] = line.acceptedAt ?? Number.NaN;
    this.streamVisibleAt[i] = line.streamVisibleAt ?? Number.NaN;
    this.lakeVisibleAt[i] = Number.NaN;
    this.nonProduct[i] = line.isNonProduct ? 1 : 0;
    if (line.isDuplicateRow === undefined) this.verdicts = false;
    this.duplicate[i] = line.isDuplicateRow ? 1 : 0;
  }

  /** add() meets another invoice's line: a second run of an invoice unsettles it. */
  private newRun(invoice: number): void {
    if (invoice >= this.runState.length) {
      const state = new Uint8Array(Math.max(this.runState.length * 2, invoice + 1));
      state.set(this.runState);
      this.runState = state;
    }
    if (this.runState[invoice] === 0) this.runState[invoice] = 1;
    else this.unsettle(invoice);
    this.runInvoice = invoice;
  }

  private unsettle(invoice: number): void {
    if (this.runState[invoice] === 2) return;
    this.runState[invoice] = 2;
    this.unsettledInvoices++;
  }

  /**
   * Of `rows`, those whose key and duplicate flag a write must still check: the typer settled the
   * others. An invoice whose lines all came through add() in one run of rising line numbers, each
   * with the typer's verdict, has no key twice and its duplicates marked (the typer compared each
   * line with every line of the invoice before it: batch/typer.ts, accept); the real file has one
   * invoice that comes back later. Lines added any other way are all unsettled.
   */
  unsettled(rows: ArrayLike<number>): ArrayLike<number> {
    if (!this.verdicts) return rows;
    if (this.unsettledInvoices === 0) return [];
    const out: number[] = [];
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k] as number;
      if (this.runState[this.invoiceNo[i] as number] === 2) out.push(i);
    }
    return out;
  }

  /**
   * Appends `rows` of `from` (default all), in that order, a column at a time. Lines of another
   * table have their string ids translated, each distinct id once.
   */
  append(from: LakeLines, rows?: readonly number[]): void {
    const n = rows ? rows.length : from.length;
    if (n > 0) this.verdicts = false;
    const at = this.length;
    this.reserve(at + n);
    const copy = (
      src: Int32Array | Float64Array | Uint8Array,
      dst: Int32Array | Float64Array | Uint8Array,
    ) => {
      if (!rows) dst.set(src.subarray(0, n), at);
      else for (let k = 0; k < n; k++) dst[at + k] = src[rows[k] as number] as number;
    };
    for (const c of INT_COLUMNS) copy(from[c], this[c]);
    for (const c of TIME_COLUMNS) copy(from[c], this[c]);
    for (const c of FLAG_COLUMNS) copy(from[c], this[c]);
    const shared = from.strings === this.strings;
    const map = shared ? undefined : new Int32Array(from.strings.size).fill(-2);
    for (const c of ID_COLUMNS) {
      const dst = this[c];
      copy(from[c], dst);
      if (!map) continue;
      for (let j = at; j < at + n; j++) {
        const id = dst[j] as number;
        if (id === NO_STRING) continue;
        let mapped = map[id] as number;
        if (mapped === -2) {
          mapped = this.strings.id(from.strings.text(id));
          map[id] = mapped;
        }
        dst[j] = mapped;
      }
    }
    this.length = at + n;
  }

  /**
   * Appends `n` rows given as columns (a file read back), from row `from` of them: strings as values
   * (null: none), numbers, flags; a missing column is all null (strings), 0 (integers), NaN (times)
   * or false (flags).
   */
  appendColumns(
    n: number,
    columns: Partial<
      Record<(typeof ID_COLUMNS)[number], ReadonlyArray<string | null | undefined>> &
        Record<(typeof INT_COLUMNS)[number] | (typeof TIME_COLUMNS)[number], ArrayLike<number>> &
        Record<(typeof FLAG_COLUMNS)[number], ArrayLike<unknown>>
    >,
    from = 0,
  ): void {
    const at = this.length;
    if (n > 0) this.verdicts = false;
    this.reserve(at + n);
    for (let ci = 0; ci < ID_COLUMNS.length; ci++) {
      const c = ID_COLUMNS[ci] as (typeof ID_COLUMNS)[number];
      const src = columns[c];
      const dst = this[c];
      for (let k = 0; k < n; k++) dst[at + k] = this.idOf(ci, src?.[from + k] ?? null);
    }
    for (const c of [...INT_COLUMNS, ...TIME_COLUMNS]) {
      const src = columns[c];
      for (let k = 0; k < n; k++) this[c][at + k] = src ? (src[from + k] as number) : Number.NaN;
    }
    for (const c of FLAG_COLUMNS) {
      const src = columns[c];
      for (let k = 0; k < n; k++) this[c][at + k] = src?.[from + k] ? 1 : 0;
    }
    this.length = at + n;
  }

  /** Drops the rows from `length` on (a half-read object). */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  /** Every row as plain values (tests compare lines read different ways). */
  rows(): Array<Record<string, string | number | boolean | null>> {
    return Array.from({ length: this.length }, (_, i) => {
      const row: Record<string, string | number | boolean | null> = {};
      for (const c of ID_COLUMNS) row[c] = this.text(c, i);
      for (const c of INT_COLUMNS) row[c] = this[c][i] as number;
      for (const c of TIME_COLUMNS) row[c] = this[c][i] as number;
      for (const c of FLAG_COLUMNS) row[c] = this[c][i] === 1;
      return row;
    });
  }
}

/**
 * Whole numbers below 2^53 in size (line keys, LakeLines.keyOf; a file's prices and quantities,
 * negative too) to rows or ids, by open addressing over typed arrays: no boxed number per key (a Map
 * or Set of the real file's keys, most past 2^31, cost ~0.15 s of a write, profiled). NaN marks an
 * empty slot.
 */
export class KeyIndex {
  private keys: Float64Array;
  private rows: Int32Array;
  private mask: number;
  private size = 0;

  constructor(expected: number) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.keys = new Float64Array(capacity).fill(Number.NaN);
    this.rows = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  private slot(key: number): number {
    const keys = this.keys;
    let h = Math.imul((key >>> 0) ^ Math.imul((key / 4294967296) >>> 0, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    let s = h & this.mask;
    // A slot holding NaN is empty.
    while (!Number.isNaN(keys[s]) && keys[s] !== key) s = (s + 1) & this.mask;
    return s;
  }

  /** The row of `key`, undefined: none. */
  get(key: number): number | undefined {
    const s = this.slot(key);
    return Number.isNaN(this.keys[s]) ? undefined : (this.rows[s] as number);
  }

  /** Gives `key` the row `row` unless it has one: answers the row it had (undefined: added). */
  add(key: number, row: number): number | undefined {
    const s = this.slot(key);
    if (!Number.isNaN(this.keys[s])) return this.rows[s] as number;
    this.keys[s] = key;
    this.rows[s] = row;
    if (++this.size * 2 > this.keys.length) this.grow();
    return undefined;
  }

  private grow(): void {
    const { keys, rows } = this;
    this.keys = new Float64Array(keys.length * 2).fill(Number.NaN);
    this.rows = new Int32Array(keys.length * 2);
    this.mask = this.keys.length - 1;
    for (let s = 0; s < keys.length; s++) {
      const key = keys[s] as number;
      if (Number.isNaN(key)) continue;
      const to = this.slot(key);
      this.keys[to] = key;
      this.rows[to] = rows[s] as number;
    }
  }
}
