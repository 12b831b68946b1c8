// Generated from the .avsc files beside this module and checked against them by test/unit/core-avro.test.ts;
// the schemas live in code so core/ stays free of file I/O and bundles without loaders.
export const INVOICE_LINE_V1 = {
  type: 'record',
  name: 'InvoiceLine',
  namespace: 'retailpipeline',
  doc: 'One invoice line accepted onto the stream. v1: the first writer schema, without currency. Kept to read old records.',
  fields: [
    {
      name: 'invoiceNo',
      type: 'string',
    },
    {
      name: 'lineNo',
      type: 'int',
    },
    {
      name: 'stockCode',
      type: 'string',
    },
    {
      name: 'description',
      type: ['null', 'string'],
      default: null,
    },
    {
      name: 'quantity',
      type: 'int',
    },
    {
      name: 'invoiceDate',
      type: 'string',
    },
    {
      name: 'unitPrice',
      type: {
        type: 'bytes',
        logicalType: 'decimal',
        precision: 15,
        scale: 3,
      },
    },
    {
      name: 'customerId',
      type: ['null', 'string'],
      default: null,
    },
    {
      name: 'country',
      type: 'string',
    },
    {
      name: 'producedAt',
      type: {
        type: 'long',
        logicalType: 'timestamp-millis',
      },
    },
    {
      name: 'acceptedAt',
      type: {
        type: 'long',
        logicalType: 'timestamp-millis',
      },
    },
  ],
} as const;

export const INVOICE_LINE_V2 = {
  type: 'record',
  name: 'InvoiceLine',
  namespace: 'retailpipeline',
  doc: 'One invoice line accepted onto the stream. Identity: (invoiceNo, lineNo). v2 = current writer and reader schema.',
  fields: [
    {
      name: 'invoiceNo',
      type: 'string',
      doc: 'Digits, optionally prefixed by C (cancellation) or A (adjustment)',
    },
    {
      name: 'lineNo',
      type: 'int',
      doc: '1-based position of the line in its invoice, in source order',
    },
    {
      name: 'stockCode',
      type: 'string',
    },
    {
      name: 'description',
      type: ['null', 'string'],
      default: null,
    },
    {
      name: 'quantity',
      type: 'int',
    },
    {
      name: 'invoiceDate',
      type: 'string',
      doc: 'Europe/London wall-clock time YYYY-MM-DDTHH:MM:SS, no zone',
    },
    {
      name: 'unitPrice',
      type: {
        type: 'bytes',
        logicalType: 'decimal',
        precision: 15,
        scale: 3,
      },
      doc: 'GBP, exact',
    },
    {
      name: 'customerId',
      type: ['null', 'string'],
      default: null,
    },
    {
      name: 'country',
      type: 'string',
      doc: 'As the source spells it (EIRE, RSA, ...)',
    },
    {
      name: 'producedAt',
      type: {
        type: 'long',
        logicalType: 'timestamp-millis',
      },
    },
    {
      name: 'acceptedAt',
      type: {
        type: 'long',
        logicalType: 'timestamp-millis',
      },
    },
    {
      name: 'currency',
      type: 'string',
      default: 'GBP',
      doc: 'ISO 4217 code of unitPrice. Added in v2; v1 records were all GBP, hence the default',
    },
  ],
} as const;

export const INVOICE_LINES_V1 = {
  type: 'record',
  name: 'InvoiceLines',
  namespace: 'retailpipeline',
  doc: 'Several lines of one invoice from one request, in source order: one Kinesis record (partition key = invoiceNo, Data <= 24 KiB). Each element is a complete v2 InvoiceLine, so a record is self-describing. v1 = current writer schema of stream records.',
  fields: [
    {
      name: 'lines',
      type: { type: 'array', items: INVOICE_LINE_V2 },
      doc: 'At least one line; all of one invoice',
    },
  ],
} as const;
