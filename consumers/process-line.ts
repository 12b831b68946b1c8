import { decodeLine } from '#core/avro';
import { type EnrichedLine, enrich } from '#core/enrich';
import { invoiceLineInput } from '#core/invoice-line';
import { errorMessage } from '#core/resilience';
import { instantMs } from '#core/rules';

export type RecordOutcome = { ok: true; line: EnrichedLine } | { ok: false; reason: string };

/**
 * One stream record: decode -> validate -> enrich. A failure here is permanent for this record
 * (the bytes will not change on retry), so it is an outcome, not an exception: the batch handler
 * sends it to the on-failure destination and moves on.
 */
export function processRecord(data: Uint8Array): RecordOutcome {
  let decoded: ReturnType<typeof decodeLine>;
  try {
    decoded = decodeLine(data);
  } catch (err) {
    return { ok: false, reason: `undecodable: ${errorMessage(err, { name: false })}` };
  }
  // The stream is a boundary too: a producer that skipped the API must not put bad lines in the store.
  const { acceptedAt, ...input } = decoded;
  const parsed = invoiceLineInput.safeParse(input);
  if (!parsed.success) {
    const reason = parsed.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ');
    return { ok: false, reason: `invalid: ${reason}` };
  }
  if (instantMs(acceptedAt) === undefined) return { ok: false, reason: `invalid: acceptedAt: ${acceptedAt}` };
  try {
    return { ok: true, line: enrich(decoded) };
  } catch (err) {
    return { ok: false, reason: `not enrichable: ${errorMessage(err, { name: false })}` };
  }
}
