import type { IngestAccepted, InvalidLine } from '#core/api-contract';
import type { AcceptedLine } from '#core/invoice-line';
import { invoiceLineInput, lineKey } from '#core/invoice-line';
import { badRequest, HttpError } from './errors.ts';

export type { InvalidLine } from '#core/api-contract';

/** The 202 answer to a request whose lines are all on the stream (acceptLines never returns none). */
export function acceptedAnswer(lines: readonly AcceptedLine[], written: number): IngestAccepted {
  return {
    accepted: written,
    invoices: new Set(lines.map((l) => l.invoiceNo)).size,
    acceptedAt: lines[0]?.acceptedAt ?? '',
  };
}

export type BodyFormat = 'json' | 'ndjson';

/** Splits a request body into raw line values; unparseable NDJSON lines are reported, not thrown. */
export function parseBody(text: string, format: BodyFormat): { values: unknown[]; invalid: InvalidLine[] } {
  if (format === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw badRequest(`body is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw badRequest('body must be a JSON array of invoice lines');
    return { values: parsed, invalid: [] };
  }
  const values: unknown[] = [];
  const invalid: InvalidLine[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const index = values.length;
    try {
      values.push(JSON.parse(raw));
    } catch {
      values.push(undefined);
      invalid.push({ index, reason: 'not valid JSON' });
    }
  }
  return { values, invalid };
}

/**
 * Validates every line and stamps acceptedAt. All or nothing: one bad line refuses the request
 * with the full list of bad lines, so a 400 always means nothing reached the stream and the
 * producer re-sends the corrected (or only the good) lines.
 */
export function acceptLines(
  body: { values: unknown[]; invalid: InvalidLine[] },
  maxLines: number,
  now: Date,
): AcceptedLine[] {
  const { values } = body;
  if (values.length > maxLines) {
    throw new HttpError(413, 'too_many_lines', `too many lines: ${values.length} > ${maxLines} per request`);
  }
  if (values.length === 0) throw badRequest('no lines in the request');
  const invalid = [...body.invalid];
  const bad = new Set(invalid.map((b) => b.index));
  const acceptedAt = now.toISOString();
  const lines: AcceptedLine[] = [];
  const firstIndex = new Map<string, number>();
  values.forEach((value, index) => {
    if (bad.has(index)) return;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      invalid.push({ index, reason: 'must be a JSON object' });
      return;
    }
    const parsed = invoiceLineInput.safeParse(value);
    if (!parsed.success) {
      const reason = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`)
        .join('; ');
      invalid.push({ index, reason });
      return;
    }
    const key = lineKey(parsed.data);
    const earlier = firstIndex.get(key);
    if (earlier !== undefined) {
      invalid.push({ index, reason: `duplicate of line ${earlier} (${key})` });
      return;
    }
    firstIndex.set(key, index);
    lines.push({ ...parsed.data, producedAt: parsed.data.producedAt ?? acceptedAt, acceptedAt });
  });
  if (invalid.length > 0) {
    invalid.sort((a, b) => a.index - b.index);
    throw new HttpError(
      400,
      'invalid_lines',
      `${invalid.length} of ${values.length} lines are invalid; nothing was accepted`,
      { invalid },
    );
  }
  return lines;
}
