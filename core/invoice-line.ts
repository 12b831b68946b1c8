import { z } from 'zod';
import {
  CUSTOMER_ID_WORDING,
  customerIdOf,
  DECIMAL_WORDING,
  decimalOf,
  INVOICE_DATE_WORDING,
  INVOICE_NO,
  INVOICE_NO_WORDING,
  ISO_INSTANT_WORDING,
  inInvoiceCalendar,
  instantMs,
  isLocalDateTime,
  LINE_NO_WORDING,
  LOCAL_DATE_TIME_WORDING,
  QUANTITY_MAX,
  QUANTITY_WORDING,
  RULES,
  type TextField,
  textProblem,
} from './rules.ts';

/** core/dates.ts checks a local time's shape with it; the rule itself lives in core/rules.ts. */
export { LOCAL_DATE_TIME } from './rules.ts';

/** A text field, trimmed, held to the field's rules (core/rules.ts); blank is `null` unless required. */
const text = (field: TextField, required: boolean) =>
  z.string().transform((raw, ctx) => {
    const s = raw.trim();
    if (s === '') {
      if (!required) return null;
      ctx.addIssue({ code: 'custom', message: 'must not be empty' });
      return z.NEVER;
    }
    const problem = textProblem(s, field);
    if (problem === undefined) return s;
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  });
const requiredText = (field: TextField) => text(field, true).pipe(z.string());

const decimal = z.union([z.string(), z.number()]).transform((v, ctx) => {
  // A number is read as the text JSON wrote it (1e400 parses to Infinity: refused).
  const value = typeof v === 'number' && !Number.isFinite(v) ? undefined : decimalOf(String(v));
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: `must be ${DECIMAL_WORDING}` });
    return z.NEVER;
  }
  return value;
});

/**
 * One invoice line as the producer sends it. `lineNo` is the line's 1-based position in its
 * invoice in source order; `(invoiceNo, lineNo)` is the line's identity everywhere.
 */
export const invoiceLineInput = z.object({
  invoiceNo: z
    .string()
    .transform((s) => s.trim())
    .pipe(z.string().regex(INVOICE_NO, `must be ${INVOICE_NO_WORDING}`)),
  lineNo: z
    .number()
    .int(`must be ${LINE_NO_WORDING}`)
    .min(RULES.lineNo.min, `must be ${LINE_NO_WORDING}`)
    .max(RULES.lineNo.max, `must be ${LINE_NO_WORDING}`),
  stockCode: requiredText('stockCode'),
  description: text('description', false).nullable().default(null),
  quantity: z
    .number()
    .int('must be a whole number')
    .min(-QUANTITY_MAX, `is out of range (${QUANTITY_WORDING})`)
    .max(QUANTITY_MAX, `is out of range (${QUANTITY_WORDING})`),
  invoiceDate: z
    .string()
    .refine(isLocalDateTime, { message: `must be ${LOCAL_DATE_TIME_WORDING}`, abort: true })
    .refine(inInvoiceCalendar, `must be ${INVOICE_DATE_WORDING}`),
  unitPrice: decimal,
  customerId: z
    .union([z.string(), z.number()])
    .nullable()
    .default(null)
    .transform((v, ctx) => {
      if (v === null) return null;
      const id = customerIdOf(String(v));
      if (id === undefined) {
        ctx.addIssue({ code: 'custom', message: `must be ${CUSTOMER_ID_WORDING} or null` });
        return z.NEVER;
      }
      return id;
    }),
  country: requiredText('country'),
  producedAt: z
    .string()
    .refine((s) => instantMs(s) !== undefined, `must be ${ISO_INSTANT_WORDING}`)
    .optional(),
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

/** A line's identity as one string: the key of every map and set of lines. */
export function lineKey(line: Pick<InvoiceLine, 'invoiceNo' | 'lineNo'>): string {
  return `${line.invoiceNo}#${line.lineNo}`;
}
