import { formatThousandths, lineTotal } from '#core/money';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleWriter } from './pg-binary.ts';
import {
  type BinaryLayout,
  csvCell,
  type RowEncoder,
  STAMP_COLUMNS,
  type Stamp,
  TYPED_COLUMNS,
  type TypedLine,
} from './typer.ts';

/** Typed lines as COPY reads them: PostgreSQL binary tuples, or CSV for COPY FROM S3 (Redshift). */

/**
 * The binary layouts' field order (a COPY names its columns, so any order loads the same rows):
 * first what all rows of an invoice share, then what all lines of a product share, then the row's
 * own values. The first two groups are encoded once per run of rows that share them and copied as
 * one block, instead of ten values encoded per row.
 */
const INVOICE_FIELDS = [
  'invoice_no',
  'date_key',
  'invoice_date',
  'customer_id',
  'country_name',
  'is_cancellation',
  'is_adjustment',
] as const;
const PRODUCT_FIELDS = ['stock_code', 'description', 'is_non_product'] as const;
const ROW_FIELDS = ['line_no', 'quantity', 'unit_price', 'line_total', 'is_duplicate_row'] as const;
const LINEAGE_FIELDS = ['produced_at', 'accepted_at', 'stream_visible_at'] as const;
const BULK_ORDER = [...INVOICE_FIELDS, ...PRODUCT_FIELDS, ...ROW_FIELDS];

/** The columns each layout writes, in its field order (the COPY's column list). */
export const BINARY_COLUMNS: Readonly<Record<BinaryLayout, readonly string[]>> = {
  bulk: BULK_ORDER,
  typed: [...BULK_ORDER, ...LINEAGE_FIELDS],
  fact: [...BULK_ORDER, ...LINEAGE_FIELDS, ...STAMP_COLUMNS],
};

/** Distinct unit prices kept encoded (a file has a few thousand; past this they are encoded per row). */
const MAX_CACHED_PRICES = 1 << 16;

/** PostgreSQL binary tuples in one of BINARY_COLUMNS' layouts. */
export class PgBinaryEncoder implements RowEncoder {
  readonly header = BINARY_HEADER;
  readonly trailer = BINARY_TRAILER;
  /** The COPY's column list, in the order the fields are written. */
  readonly columns: readonly string[];
  private readonly w = new BinaryTupleWriter();
  /** Encodes the shared blocks and cached values (never the row stream). */
  private readonly scratch = new BinaryTupleWriter();
  /** The fields after is_duplicate_row when the line has no lineage: three NULLs and the stamp. */
  private readonly plainTail: Buffer;
  private readonly stampTail: Buffer;
  /** The field count and the invoice's fields, for the run of rows that share them. */
  private invoiceBlock: Buffer = Buffer.alloc(0);
  private invoiceNo = '';
  private invoiceMs = Number.NaN;
  private customerId: string | null | undefined;
  private country = '';
  /** A product's fields, by product id. */
  private readonly products: Array<Buffer | undefined> = [];
  private readonly prices = new Map<number, Buffer>();

  /** `stamp` is required by the 'fact' layout. */
  constructor(
    private readonly layout: BinaryLayout = 'typed',
    stamp?: Stamp,
  ) {
    this.columns = BINARY_COLUMNS[layout];
    const tail = new BinaryTupleWriter();
    if (layout === 'fact') {
      if (!stamp) throw new Error("the 'fact' layout writes a stamp");
      tail.instant(stamp.visibleAtMs);
      tail.text(stamp.source);
      tail.text(stamp.sourceKey);
    }
    this.stampTail = tail.take();
    if (layout !== 'bulk') {
      tail.null();
      tail.null();
      tail.null();
    }
    this.plainTail = Buffer.concat([tail.take(), this.stampTail]);
  }

  private invoiceFields(l: TypedLine): Buffer {
    const s = this.scratch;
    s.tuple(this.columns.length);
    s.text(l.invoiceNo);
    s.int4(l.dateKey);
    s.timestamp(l.invoiceMs);
    s.text(l.customerId);
    s.text(l.country);
    const kind = l.invoiceNo.charCodeAt(0);
    s.bool(kind === 0x43); // C: cancellation
    s.bool(kind === 0x41); // A: adjustment
    return s.take();
  }

  private productFields(l: TypedLine): Buffer {
    let block = this.products[l.productId];
    if (block === undefined) {
      const s = this.scratch;
      s.text(l.stockCode);
      s.text(l.description);
      s.bool(l.isNonProduct);
      block = s.take();
      this.products[l.productId] = block;
    }
    return block;
  }

  private priceField(price: number): Buffer {
    let field = this.prices.get(price);
    if (field === undefined) {
      this.scratch.thousandths(price);
      field = this.scratch.take();
      if (this.prices.size < MAX_CACHED_PRICES) this.prices.set(price, field);
    }
    return field;
  }

  write(l: TypedLine): void {
    const w = this.w;
    // The typer hands the same string objects row after row: these are mostly identity checks.
    if (
      l.invoiceNo !== this.invoiceNo ||
      l.invoiceMs !== this.invoiceMs ||
      l.customerId !== this.customerId ||
      l.country !== this.country
    ) {
      this.invoiceNo = l.invoiceNo;
      this.invoiceMs = l.invoiceMs;
      this.customerId = l.customerId;
      this.country = l.country;
      this.invoiceBlock = this.invoiceFields(l);
    }
    w.bytes(this.invoiceBlock);
    w.bytes(this.productFields(l));
    w.int4(l.lineNo);
    w.int4(l.quantity);
    const price = l.price;
    w.bytes(this.priceField(price));
    const total = price * l.quantity;
    if (Number.isSafeInteger(total)) w.thousandths(total);
    else w.decimal(lineTotal(l.quantity, formatThousandths(price)));
    w.bool(l.isDuplicateRow);
    if (l.producedAt === null && l.acceptedAt === null && l.streamVisibleAt === null) {
      if (this.plainTail.length > 0) w.bytes(this.plainTail);
    } else if (this.layout === 'bulk') throw new Error('the bulk layout has no lineage columns');
    else {
      w.instant(l.producedAt);
      w.instant(l.acceptedAt);
      w.instant(l.streamVisibleAt);
      w.bytes(this.stampTail);
    }
  }

  take(): Buffer {
    return this.w.take();
  }
}

const sqlInstant = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** CSV rows of TYPED_COLUMNS, for warehouses that COPY from S3 (Redshift). */
export class CsvRowEncoder implements RowEncoder {
  readonly columns = TYPED_COLUMNS;
  readonly header = undefined;
  readonly trailer = undefined;
  private parts: string[] = [];

  write(l: TypedLine): void {
    const price = l.price;
    const total = price * l.quantity;
    const kind = l.invoiceNo.charCodeAt(0);
    this.parts.push(
      [
        l.invoiceNo,
        l.lineNo,
        l.dateKey,
        l.invoiceDate.replace('T', ' '),
        l.stockCode,
        l.description,
        l.customerId,
        l.country,
        l.quantity,
        formatThousandths(price),
        Number.isSafeInteger(total)
          ? formatThousandths(total)
          : lineTotal(l.quantity, formatThousandths(price)),
        kind === 0x43,
        kind === 0x41,
        l.isNonProduct,
        l.isDuplicateRow,
        sqlInstant(l.producedAt),
        sqlInstant(l.acceptedAt),
        sqlInstant(l.streamVisibleAt),
      ]
        .map(csvCell)
        .join(','),
      '\n',
    );
  }

  take(): Buffer {
    const out = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    return out;
  }
}
