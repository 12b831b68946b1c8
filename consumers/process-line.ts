import { decodeRecords, type InvoiceLineRecord, toAcceptedLine } from '#core/avro';
import { type EnrichedLine, enrich } from '#core/enrich';
import { invoiceLineInput } from '#core/invoice-line';
import { errorMessage } from '#core/resilience';
import { instantMs } from '#core/rules';

/** A line of a record that can never be stored, with its position in the record and why. */
export interface InvalidLine {
  /** 0-based position of the line in its record. */
  index: number;
  reason: string;
  /** The line as decoded (for the dead letter: what a person would correct and re-send). */
  line: InvoiceLineRecord;
}

export type RecordOutcome =
  /** The record cannot be read at all: it goes to the on-failure destination whole. */
  | { ok: false; reason: string }
  /** `lines` are the good lines, in record order; `invalid` the others (each named). */
  | { ok: true; lines: EnrichedLine[]; invalid: InvalidLine[] };

/**
 * One stream record: decode -> validate and enrich each line. A failure here is permanent (the
 * bytes will not change on retry), so it is an outcome, not an exception: the batch handler sends
 * it to the on-failure destination and moves on. A record is read whole or not at all (Avro has no
 * line boundaries to resync on), but its lines are judged one by one: a bad line does not take
 * its good neighbours with it.
 *
 * `partitionKey`, when given, must be each line's invoice number: the writer keys records by
 * invoice so that one shard holds every line of an invoice, which line ownership relies on. A
 * producer that skipped the API and broke that rule gets those lines refused, not misplaced.
 */
export function processRecord(data: Uint8Array, partitionKey?: string): RecordOutcome {
  let records: InvoiceLineRecord[];
  try {
    records = decodeRecords(data);
  } catch (err) {
    return { ok: false, reason: `undecodable: ${errorMessage(err, { name: false })}` };
  }
  const lines: EnrichedLine[] = [];
  const invalid: InvalidLine[] = [];
  records.forEach((record, index) => {
    const outcome = processLine(record, partitionKey);
    if (typeof outcome === 'string') invalid.push({ index, reason: outcome, line: record });
    else lines.push(outcome);
  });
  return { ok: true, lines, invalid };
}

/** The enriched line, or why it cannot be stored. */
function processLine(record: InvoiceLineRecord, partitionKey: string | undefined): EnrichedLine | string {
  let decoded: ReturnType<typeof toAcceptedLine>;
  try {
    decoded = toAcceptedLine(record);
  } catch (err) {
    return `invalid: ${errorMessage(err, { name: false })}`;
  }
  // The stream is a boundary too: a producer that skipped the API must not put bad lines in the store.
  const { acceptedAt, ...input } = decoded;
  const parsed = invoiceLineInput.safeParse(input);
  if (!parsed.success) {
    return `invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ')}`;
  }
  if (instantMs(acceptedAt) === undefined) return `invalid: acceptedAt: ${acceptedAt}`;
  if (partitionKey !== undefined && decoded.invoiceNo !== partitionKey) {
    return `invalid: invoiceNo ${decoded.invoiceNo} in a record keyed by invoice ${partitionKey}`;
  }
  try {
    return enrich(decoded);
  } catch (err) {
    return `not enrichable: ${errorMessage(err, { name: false })}`;
  }
}
