import fs from 'node:fs/promises';
import path from 'node:path';
import {
  type AttributeValue,
  type DynamoDBClient,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { LINE_TOTAL_ATTRIBUTES, lineTotalsOf } from '#adapters/invoice-items';
import { mapLimit } from '#adapters/retry';
import type { Warehouse } from '#adapters/warehouse';
import { lineKey } from '#core/invoice-line';

/**
 * Reconciliation: what the producer was told was accepted (its run logs, docs/producer.md) against
 * what the serving store (DynamoDB line items) and the warehouse (fact_sales_line) hold. Every
 * accepted key must be in each store exactly once with the same line total, to the thousandth.
 * Money is compared as whole thousandths in BigInt: never a float.
 */

/**
 * What reconciliation reads of one line in a store: its key and total (not the serving store's
 * StoredLine, adapters/invoice-store.ts, which is the whole line).
 */
export interface LineTotalRow {
  invoiceNo: string;
  lineNo: number;
  lineTotal: string;
  /** Where the store has it (the warehouse, the lake): summed beside the totals and compared with the reference's. */
  quantity?: number;
}

/** The narrowest read a store needs to offer: its lines of the given invoices (or all of them). */
export interface LineSource {
  readonly name: string;
  /** Every line of these invoices; lines of other invoices may be included (they are ignored). */
  linesOf(invoices: ReadonlySet<string>): Promise<LineTotalRow[]>;
  /**
   * Keys (lineKey) the store does not hold yet by its own bookkeeping and will (the lake: lines of
   * loaded objects its write has not reached): one of them absent is pending, not missing. Read
   * before `linesOf`, so a line written in between is found, never counted twice.
   */
  pendingKeys?(): Promise<ReadonlySet<string>>;
}

export interface ReconcileScope {
  /** Only these run ids (file names without .ndjson). */
  runIds?: string[];
  /** Only batches accepted at or after this instant. */
  since?: Date;
}

export interface AcceptedSet {
  /** key -> accepted line total in thousandths (the last acceptance wins when a key was re-sent). */
  lines: Map<string, bigint>;
  runs: string[];
  batches: number;
  /** Keys accepted more than once (a producer retry or a rerun): fine, they are still one line. */
  reaccepted: number;
  /** Keys accepted more than once with different totals: the later one is what the stores should hold. */
  conflicting: number;
}

export interface KeyDiff {
  key: string;
  expected?: string;
  actual?: string;
  copies?: number;
}

export interface StoreReport {
  store: string;
  /** Rows found for accepted keys (duplicates counted as often as they occur). */
  lines: number;
  revenue: string;
  /** The quantities of those rows, when the store reads them. */
  quantity?: number;
  missing: number;
  /** Absent keys the store's bookkeeping says are on their way (LineSource.pendingKeys); not a difference. */
  pending?: number;
  duplicated: number;
  mismatched: number;
  /** Lines of the scoped invoices that no run log accepted (other sources, or a kill before the log write). */
  extra: number;
  samples: { missing: KeyDiff[]; duplicated: KeyDiff[]; mismatched: KeyDiff[] };
  ms: number;
}

export interface ReconcileReport {
  ok: boolean;
  /** `reference`: the store the others were compared with instead of the run logs (reconcileWith). */
  scope: { runs: string[]; since?: string; reference?: string };
  accepted: {
    lines: number;
    invoices: number;
    revenue: string;
    quantity?: number;
    batches: number;
    reaccepted: number;
    conflicting: number;
  };
  stores: StoreReport[];
  ms: number;
}

export class ReconcileInputError extends Error {
  override name = 'ReconcileInputError';
}

// Keys are core's lineKey (`<invoiceNo>#<lineNo>`); an invoice number never holds a '#'.
const SEP = '#';
const invoiceOf = (key: string): string => key.slice(0, key.indexOf(SEP));
export const showKey = (key: string): string => key.replace(SEP, '/');

/** Exact decimal text -> thousandths. More than 3 decimals is refused unless the extra digits are 0. */
export function toMilli(text: string | number): bigint {
  const s = String(text).trim();
  const m = /^([+-])?(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === ''))
    throw new ReconcileInputError(`not a decimal: ${JSON.stringify(s)}`);
  const frac = m[3] ?? '';
  if (/[1-9]/.test(frac.slice(3))) throw new ReconcileInputError(`more than 3 decimals: ${s}`);
  const milli = BigInt(m[2] || '0') * 1000n + BigInt(`${frac}000`.slice(0, 3));
  return m[1] === '-' ? -milli : milli;
}

export function formatMilli(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  return `${neg ? '-' : ''}${a / 1000n}.${(a % 1000n).toString().padStart(3, '0')}`;
}

interface RunRecord {
  t: string;
  runId?: string;
  at?: string;
  lines?: Array<[string, number, string]>;
}

/** Reads the run logs of `dir` in scope. A truncated last line (the producer was killed mid-write) is skipped. */
export async function readAcceptedLines(dir: string, scope: ReconcileScope = {}): Promise<AcceptedSet> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.ndjson')).sort();
  } catch (cause) {
    throw new ReconcileInputError(`no run logs in ${dir}`, { cause });
  }
  if (scope.runIds?.length) {
    const wanted = new Set(scope.runIds);
    const unknown = scope.runIds.filter((id) => !names.includes(`${id}.ndjson`));
    if (unknown.length > 0) throw new ReconcileInputError(`no run log for ${unknown.join(', ')} in ${dir}`);
    names = names.filter((n) => wanted.has(n.slice(0, -'.ndjson'.length)));
  }
  const since = scope.since?.getTime();
  const batches: Array<{ at: number; seq: number; lines: Array<[string, number, string]> }> = [];
  const runs: string[] = [];
  let seq = 0;
  for (const name of names) {
    const text = await fs.readFile(path.join(dir, name), 'utf8');
    let used = false;
    for (const row of text.split('\n')) {
      if (!row.trim()) continue;
      let rec: RunRecord;
      try {
        rec = JSON.parse(row) as RunRecord;
      } catch {
        continue; // a line cut short by a kill: its batch was never fully recorded, so not claimed
      }
      if (rec.t !== 'batch' || !rec.lines) continue;
      const at = Date.parse(rec.at ?? '');
      if (since !== undefined && !(at >= since)) continue;
      batches.push({ at, seq: seq++, lines: rec.lines });
      used = true;
    }
    if (used) runs.push(name.slice(0, -'.ndjson'.length));
  }
  // Acceptance order across runs, so a rerun's totals supersede an earlier run's for the same key.
  batches.sort((a, b) => a.at - b.at || a.seq - b.seq);
  const lines = new Map<string, bigint>();
  let reaccepted = 0;
  let conflicting = 0;
  for (const b of batches) {
    for (const [invoiceNo, lineNo, total] of b.lines) {
      const key = lineKey({ invoiceNo, lineNo });
      const milli = toMilli(total);
      const before = lines.get(key);
      if (before !== undefined) {
        reaccepted++;
        if (before !== milli) conflicting++;
      }
      lines.set(key, milli);
    }
  }
  return { lines, runs, batches: batches.length, reaccepted, conflicting };
}

/** Compares one store's lines with the accepted set. */
export function compareStore(
  store: string,
  accepted: ReadonlyMap<string, bigint>,
  invoices: ReadonlySet<string>,
  rows: readonly LineTotalRow[],
  sampleLimit = 20,
  pendingKeys?: ReadonlySet<string>,
): Omit<StoreReport, 'ms'> {
  const seen = new Map<string, { copies: number; milli: bigint; bad?: string }>();
  let extra = 0;
  let lines = 0;
  let revenue = 0n;
  let quantity: number | undefined;
  for (const r of rows) {
    const key = lineKey({ invoiceNo: r.invoiceNo, lineNo: Number(r.lineNo) });
    if (!accepted.has(key)) {
      if (invoices.has(r.invoiceNo)) extra++;
      continue;
    }
    let milli: bigint;
    let bad: string | undefined;
    try {
      milli = toMilli(r.lineTotal);
    } catch {
      milli = 0n;
      bad = String(r.lineTotal);
    }
    lines++;
    revenue += milli;
    if (r.quantity !== undefined) quantity = (quantity ?? 0) + r.quantity;
    const s = seen.get(key);
    if (s) s.copies++;
    else seen.set(key, { copies: 1, milli, ...(bad !== undefined ? { bad } : {}) });
  }
  const samples: StoreReport['samples'] = { missing: [], duplicated: [], mismatched: [] };
  let missing = 0;
  let pending = 0;
  let duplicated = 0;
  let mismatched = 0;
  for (const [key, expected] of accepted) {
    const s = seen.get(key);
    if (!s) {
      if (pendingKeys?.has(key)) {
        pending++;
        continue;
      }
      missing++;
      if (samples.missing.length < sampleLimit)
        samples.missing.push({ key, expected: formatMilli(expected) });
      continue;
    }
    if (s.copies > 1) {
      duplicated++;
      if (samples.duplicated.length < sampleLimit) samples.duplicated.push({ key, copies: s.copies });
    }
    if (s.bad !== undefined || s.milli !== expected) {
      mismatched++;
      if (samples.mismatched.length < sampleLimit) {
        samples.mismatched.push({
          key,
          expected: formatMilli(expected),
          actual: s.bad ?? formatMilli(s.milli),
        });
      }
    }
  }
  for (const list of Object.values(samples)) for (const d of list) d.key = showKey(d.key);
  return {
    store,
    lines,
    revenue: formatMilli(revenue),
    ...(quantity !== undefined ? { quantity } : {}),
    missing,
    ...(pendingKeys ? { pending } : {}),
    duplicated,
    mismatched,
    extra,
    samples,
  };
}

/** One store read and compared: its pending keys first (LineSource.pendingKeys says why). */
async function readStore(
  source: LineSource,
  accepted: ReadonlyMap<string, bigint>,
  invoices: ReadonlySet<string>,
  sampleLimit: number | undefined,
): Promise<StoreReport> {
  const t = performance.now();
  const pending = await source.pendingKeys?.();
  const rows = await source.linesOf(invoices);
  const report = compareStore(source.name, accepted, invoices, rows, sampleLimit, pending);
  return { ...report, ms: Math.round(performance.now() - t) };
}

export interface ReconcileOptions {
  runLogDir: string;
  scope?: ReconcileScope;
  sources: LineSource[];
  sampleLimit?: number;
}

export async function reconcile(opts: ReconcileOptions): Promise<ReconcileReport> {
  const started = performance.now();
  const accepted = await readAcceptedLines(opts.runLogDir, opts.scope);
  const invoices = new Set<string>();
  let revenue = 0n;
  for (const [key, milli] of accepted.lines) {
    invoices.add(invoiceOf(key));
    revenue += milli;
  }
  // The stores are read in parallel: one is a DynamoDB emulator, the other PostgreSQL.
  const stores = await Promise.all(
    opts.sources.map((source) => readStore(source, accepted.lines, invoices, opts.sampleLimit)),
  );
  const ok = stores.every((s) => s.missing === 0 && s.duplicated === 0 && s.mismatched === 0);
  return {
    ok,
    scope: { runs: accepted.runs, ...(opts.scope?.since ? { since: opts.scope.since.toISOString() } : {}) },
    accepted: {
      lines: accepted.lines.size,
      invoices: invoices.size,
      revenue: formatMilli(revenue),
      batches: accepted.batches,
      reaccepted: accepted.reaccepted,
      conflicting: accepted.conflicting,
    },
    stores,
    ms: Math.round(performance.now() - started),
  };
}

/**
 * A store against another one taken as the truth (the lake against the warehouse): every line of
 * the reference exactly once in each store, with its total (and, where both read it, its quantity
 * summed alike). Lines no producer run log names (bulk CSV drops) are covered this way.
 */
export async function reconcileWith(opts: {
  reference: LineSource;
  sources: LineSource[];
  sampleLimit?: number;
}): Promise<ReconcileReport> {
  const started = performance.now();
  const rows = await opts.reference.linesOf(new Set());
  const lines = new Map<string, bigint>();
  const invoices = new Set<string>();
  let revenue = 0n;
  let reaccepted = 0;
  for (const r of rows) {
    const key = lineKey({ invoiceNo: r.invoiceNo, lineNo: Number(r.lineNo) });
    const milli = toMilli(r.lineTotal);
    if (lines.has(key)) reaccepted++;
    lines.set(key, milli);
    invoices.add(r.invoiceNo);
    revenue += milli;
  }
  const stores = await Promise.all(
    opts.sources.map((source) => readStore(source, lines, invoices, opts.sampleLimit)),
  );
  const quantity = rows.every((r) => r.quantity !== undefined)
    ? rows.reduce((n, r) => n + (r.quantity ?? 0), 0)
    : undefined;
  // A reference line twice is itself a difference; quantities are compared only where both sides
  // read them and the store holds every line (pending lines are not in its sum).
  const ok =
    reaccepted === 0 &&
    stores.every(
      (s) =>
        s.missing === 0 &&
        s.duplicated === 0 &&
        s.mismatched === 0 &&
        (quantity === undefined ||
          s.quantity === undefined ||
          (s.pending ?? 0) > 0 ||
          s.quantity === quantity),
    );
  return {
    ok,
    scope: { runs: [], reference: opts.reference.name },
    accepted: {
      lines: lines.size,
      invoices: invoices.size,
      revenue: formatMilli(revenue),
      ...(quantity !== undefined ? { quantity } : {}),
      batches: 0,
      reaccepted,
      conflicting: 0,
    },
    stores,
    ms: Math.round(performance.now() - started),
  };
}

// ----- sources ------------------------------------------------------------------------------------

/** fact_sales_line in one query (the whole table: cheaper than shipping a key list to the database). */
export function warehouseLineSource(warehouse: Pick<Warehouse, 'query'>): LineSource {
  return {
    name: 'warehouse',
    async linesOf() {
      const { rows } = await warehouse.query<{
        invoice_no: string;
        line_no: number;
        line_total: string;
        quantity: number;
      }>(
        'SELECT invoice_no, line_no, CAST(line_total AS varchar(40)) AS line_total, quantity FROM fact_sales_line',
      );
      return rows.map((r) => ({
        invoiceNo: r.invoice_no,
        lineNo: Number(r.line_no),
        lineTotal: r.line_total,
        quantity: Number(r.quantity),
      }));
    },
  };
}

export interface DynamoSourceOptions {
  client: DynamoDBClient;
  table: string;
  /**
   * `query`: one consistent Query per invoice in scope (best when the scope is a small part of the
   * table); `scan`: a parallel Scan of the whole table. `auto` picks by the number of invoices.
   */
  mode?: 'auto' | 'query' | 'scan';
  segments?: number;
  concurrency?: number;
}

/**
 * The lines of the DynamoDB table: invoice chunk items (`INV#<no>` / `LINES#...`) and the line
 * items of earlier versions (`LINE#...`), decoded by the store's layout (adapters/invoice-items.ts);
 * names aliased (reserved words).
 */
export function dynamoLineSource(opts: DynamoSourceOptions): LineSource {
  const names = Object.fromEntries(LINE_TOTAL_ATTRIBUTES.map((a, i) => [`#a${i}`, a]));
  const projection = Object.keys(names).join(', ');
  /** Every line item of a paged Query or Scan, page after page. */
  async function drain(
    page: (start: Record<string, AttributeValue> | undefined) => Promise<{
      Items?: Record<string, AttributeValue>[];
      LastEvaluatedKey?: Record<string, AttributeValue>;
    }>,
    out: LineTotalRow[],
  ): Promise<void> {
    let start: Record<string, AttributeValue> | undefined;
    do {
      const got = await page(start);
      for (const item of got.Items ?? []) out.push(...lineTotalsOf(item));
      start = got.LastEvaluatedKey;
    } while (start);
  }
  async function query(invoices: ReadonlySet<string>): Promise<LineTotalRow[]> {
    const out: LineTotalRow[] = [];
    await mapLimit([...invoices], opts.concurrency ?? 16, (invoiceNo) =>
      drain(
        (start) =>
          opts.client.send(
            new QueryCommand({
              TableName: opts.table,
              ConsistentRead: true,
              KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :line)',
              ExpressionAttributeNames: { ...names, '#pk': 'pk', '#sk': 'sk' },
              ExpressionAttributeValues: { ':pk': { S: `INV#${invoiceNo}` }, ':line': { S: 'LINE' } },
              ProjectionExpression: projection,
              ...(start ? { ExclusiveStartKey: start } : {}),
            }),
          ),
        out,
      ),
    );
    return out;
  }
  async function scan(): Promise<LineTotalRow[]> {
    const segments = opts.segments ?? 4;
    const out: LineTotalRow[] = [];
    await Promise.all(
      Array.from({ length: segments }, (_, segment) =>
        drain(
          (start) =>
            opts.client.send(
              new ScanCommand({
                TableName: opts.table,
                ConsistentRead: true,
                Segment: segment,
                TotalSegments: segments,
                FilterExpression: 'begins_with(#pk, :inv) AND begins_with(#sk, :line)',
                ExpressionAttributeNames: { ...names, '#pk': 'pk', '#sk': 'sk' },
                ExpressionAttributeValues: { ':inv': { S: 'INV#' }, ':line': { S: 'LINE' } },
                ProjectionExpression: projection,
                ...(start ? { ExclusiveStartKey: start } : {}),
              }),
            ),
          out,
        ),
      ),
    );
    return out;
  }
  return {
    name: 'dynamodb',
    linesOf(invoices) {
      const mode = opts.mode ?? 'auto';
      if (mode === 'query' || (mode === 'auto' && invoices.size <= 2000)) return query(invoices);
      return scan();
    },
  };
}
