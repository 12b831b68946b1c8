import { formatThousandths, lineTotal } from '#core/money';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleWriter } from './pg-binary.ts';
import {
  type BinaryLayout,
  BULK_COLUMNS,
  csvCell,
  type RowEncoder,
  STAMP_COLUMNS,
  type Stamp,
  TYPED_COLUMNS,
  type TypedLine,
} from './typer.ts';

/** Typed lines as COPY reads them: PostgreSQL binary tuples, or CSV for COPY FROM S3 (Redshift). */

const NULL_FIELD = Buffer.from([0xff, 0xff, 0xff, 0xff]);

/** PostgreSQL binary tuples; with a stamp, the fact's whole column list (TYPED + STAMP). */
export class PgBinaryEncoder implements RowEncoder {
  readonly header = BINARY_HEADER;
  readonly trailer = BINARY_TRAILER;
  private readonly w = new BinaryTupleWriter();
  /** The fields after is_duplicate_row when the line has no lineage: three NULLs and the stamp. */
  private readonly plainTail: Buffer;
  private readonly stampTail: Buffer;
  private readonly fields: number;
  /** Encoded (length-prefixed) text fields, by interner id or for the last value seen. */
  private readonly codes: Buffer[] = [];
  private readonly descriptions: Buffer[] = [];
  private lastInvoice = '';
  private lastInvoiceBytes: Buffer = Buffer.alloc(0);
  private lastCustomer: string | null | undefined;
  private lastCustomerBytes: Buffer = Buffer.alloc(0);
  private lastCountry = '';
  private lastCountryBytes: Buffer = Buffer.alloc(0);

  /** `stamp` is required by the 'fact' layout. */
  constructor(
    private readonly layout: BinaryLayout = 'typed',
    stamp?: Stamp,
  ) {
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
    this.fields =
      layout === 'bulk'
        ? BULK_COLUMNS.length
        : layout === 'fact'
          ? TYPED_COLUMNS.length + STAMP_COLUMNS.length
          : TYPED_COLUMNS.length;
  }

  /** A text field, length prefix included, in a buffer of its own size (made once per value). */
  private encoded(value: string | null): Buffer {
    if (value === null) return NULL_FIELD;
    const bytes = Buffer.from(value, 'utf8');
    const out = Buffer.allocUnsafe(4 + bytes.length);
    out.writeInt32BE(bytes.length, 0);
    bytes.copy(out, 4);
    return out;
  }

  write(l: TypedLine): void {
    const w = this.w;
    let code = this.codes[l.stockId];
    if (code === undefined) {
      code = this.encoded(l.stockCode);
      this.codes[l.stockId] = code;
    }
    let desc = this.descriptions[l.descriptionId];
    if (desc === undefined) {
      desc = this.encoded(l.description);
      this.descriptions[l.descriptionId] = desc;
    }
    if (l.invoiceNo !== this.lastInvoice) {
      this.lastInvoice = l.invoiceNo;
      this.lastInvoiceBytes = this.encoded(l.invoiceNo);
    }
    if (l.customerId !== this.lastCustomer) {
      this.lastCustomer = l.customerId;
      this.lastCustomerBytes = this.encoded(l.customerId);
    }
    if (l.country !== this.lastCountry) {
      this.lastCountry = l.country;
      this.lastCountryBytes = this.encoded(l.country);
    }
    w.tuple(this.fields);
    w.bytes(this.lastInvoiceBytes);
    w.int4(l.lineNo);
    w.int4(l.dateKey);
    w.timestamp(l.invoiceMs);
    w.bytes(code);
    w.bytes(desc);
    w.bytes(this.lastCustomerBytes);
    w.bytes(this.lastCountryBytes);
    w.int4(l.quantity);
    const price = l.price;
    w.thousandths(price);
    const total = price * l.quantity;
    if (Number.isSafeInteger(total)) w.thousandths(total);
    else w.decimal(lineTotal(l.quantity, formatThousandths(price)));
    const kind = l.invoiceNo.charCodeAt(0);
    w.bool(kind === 0x43); // C: cancellation
    w.bool(kind === 0x41); // A: adjustment
    w.bool(l.isNonProduct);
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
