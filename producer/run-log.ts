import fs from 'node:fs/promises';
import path from 'node:path';
import type { InvoiceLineInput } from '#core/invoice-line';
import { lineTotal } from '#core/money';

/**
 * What a producer run delivered, for a later reconciliation: `<dir>/<runId>.ndjson`, one JSON object per line.
 *   {"t":"run", runId, kind, target, startedAt, options}          first
 *   {"t":"batch", at, n, lines: [[invoiceNo, lineNo, lineTotal], ...]}  one per 202, appended only after it
 *   {"t":"summary", ...counts}                                   last, when the run ends
 * lineTotal is quantity x unitPrice as exact decimal text (core/money's lineTotal, 3 decimals).
 */
export interface RunLog {
  readonly path: string;
  appendBatch(lines: InvoiceLineInput[]): Promise<void>;
  close(summary: object): Promise<void>;
}

export function newRunId(kind: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${kind}-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

export async function openRunLog(dir: string, runId: string, header: object): Promise<RunLog> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${runId}.ndjson`);
  await fs.writeFile(file, `${JSON.stringify({ t: 'run', runId, ...header })}\n`, { flag: 'wx' });
  // Appends are serialised so records never interleave and the file order is the acceptance order.
  let chain: Promise<void> = Promise.resolve();
  const append = (record: object) => {
    chain = chain.then(() => fs.appendFile(file, `${JSON.stringify(record)}\n`));
    return chain;
  };
  return {
    path: file,
    appendBatch: (lines) =>
      append({
        t: 'batch',
        at: new Date().toISOString(),
        n: lines.length,
        lines: lines.map((l) => [l.invoiceNo, l.lineNo, lineTotal(l.quantity, String(l.unitPrice))]),
      }),
    close: (summary) => append({ t: 'summary', at: new Date().toISOString(), ...summary }),
  };
}

/**
 * The highest invoice number (without its C/A prefix) any run in `dir` delivered, so a new simulator
 * run can continue past it instead of reusing keys. Undefined when there are no run logs.
 */
export async function highestInvoiceNumber(dir: string): Promise<number | undefined> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.ndjson'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let highest: number | undefined;
  for (const name of names) {
    const text = await fs.readFile(path.join(dir, name), 'utf8');
    for (const row of text.split('\n')) {
      if (!row.startsWith('{"t":"batch"')) continue;
      let record: { lines?: Array<[string, number, string]> };
      try {
        record = JSON.parse(row);
      } catch {
        continue; // a torn last row of a killed run
      }
      for (const [invoiceNo] of record.lines ?? []) {
        const n = Number.parseInt(invoiceNo.replace(/^[A-Z]/, ''), 10);
        if (Number.isFinite(n) && (highest === undefined || n > highest)) highest = n;
      }
    }
  }
  return highest;
}
