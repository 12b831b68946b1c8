import { z } from 'zod';

/** Exact decimal text: up to 3 decimal places (GBP prices in the source go to 3). */
export const DECIMAL_3 = /^-?\d{1,12}(\.\d{1,3})?$/;
/** Local wall-clock time in Europe/London, no zone: `YYYY-MM-DDTHH:MM:SS`. */
export const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

// Control characters are refused in text fields: they have no place in an invoice and break CSV/COPY.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is this pattern's job
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const text = (max: number) =>
  z
    .string()
    .max(max, `at most ${max} characters`)
    .refine((s) => !CONTROL.test(s), 'contains control characters');

const decimal3 = z.union([z.string(), z.number()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) {
      ctx.addIssue({ code: 'custom', message: 'must be a finite number' });
      return z.NEVER;
    }
    v = String(v);
  }
  const s = v.trim();
  if (!DECIMAL_3.test(s)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a decimal with at most 3 decimal places and 12 digits',
    });
    return z.NEVER;
  }
  return s;
});

/**
 * One invoice line as the producer sends it. `lineNo` is the line's 1-based position in its
 * invoice in source order; `(invoiceNo, lineNo)` is the line's identity everywhere.
 */
export const invoiceLineInput = z.object({
  invoiceNo: z.string().regex(/^[A-Z]?\d{1,10}$/, 'digits, optionally prefixed by one capital letter (C, A)'),
  lineNo: z.number().int().min(1).max(1_000_000),
  stockCode: text(32).pipe(z.string().trim().min(1, 'must not be empty')),
  description: text(255).nullable().default(null),
  quantity: z.number().int().min(-10_000_000).max(10_000_000),
  invoiceDate: z.string().regex(LOCAL_DATE_TIME, 'must be local time YYYY-MM-DDTHH:MM:SS'),
  unitPrice: decimal3,
  customerId: z
    .union([z.string(), z.number()])
    .nullable()
    .default(null)
    .transform((v, ctx) => {
      if (v === null) return null;
      const s = String(v).trim().replace(/\.0+$/, '');
      if (s === '') return null;
      if (!/^\d{1,12}$/.test(s)) {
        ctx.addIssue({ code: 'custom', message: 'must be a whole number or null' });
        return z.NEVER;
      }
      return s;
    }),
  country: text(64).pipe(z.string().trim().min(1, 'must not be empty')),
  producedAt: z.iso.datetime({ offset: true }).optional(),
});

export type InvoiceLineInput = z.input<typeof invoiceLineInput>;

/** A validated line. Money is decimal text, never a binary float. */
export interface InvoiceLine {
  invoiceNo: string;
  lineNo: number;
  stockCode: string;
  description: string | null;
  quantity: number;
  invoiceDate: string;
  unitPrice: string;
  customerId: string | null;
  country: string;
  /** ISO-8601 UTC instant the producer made the line. */
  producedAt: string;
}

/** A line the API accepted onto the stream. */
export interface AcceptedLine extends InvoiceLine {
  acceptedAt: string;
}

export function lineKey(line: Pick<InvoiceLine, 'invoiceNo' | 'lineNo'>): string {
  return `${line.invoiceNo}#${line.lineNo}`;
}
