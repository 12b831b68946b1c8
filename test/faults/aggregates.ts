import fs from 'node:fs/promises';
import path from 'node:path';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { createClients } from '#adapters/clients';
import { dynamoLineSource, formatMilli, readAcceptedLines } from '#batch/reconcile';
import { lineKey } from '#core/invoice-line';
import { lineTotal, sumMoney } from '#core/money';
import type { Endpoints } from '#local/endpoints';
import { CheckpointStore } from '#local/poller-checkpoint';
import { createGenerator } from '#producer/generator';
import { eventually } from '#test/helpers/stack';

/**
 * The real-time aggregates (DynamoDB counters: the one place a redelivery can count a line twice)
 * against the run logs. A run log records each accepted line's key and total only; its header
 * holds the simulator's seed, so the lines themselves (country, quantity) are rebuilt from it and
 * checked against the logged totals before they are trusted.
 */

export interface Measures {
  lines: number;
  invoices: number;
  quantity: number;
  revenue: string;
}

export interface Aggregates {
  totals: Measures;
  countries: Record<string, Measures>;
}

/** What `GET /stats/countries` answers (docs/api.md). */
interface CountryStatsBody {
  totals: Measures;
  countries: Array<Measures & { country: string }>;
}

interface RebuiltLine {
  country: string;
  quantity: number;
  lineNo: number;
  lineTotal: string;
}

interface RunHeader {
  t: 'run';
  runId: string;
  kind: string;
  seed?: number;
  lines?: number;
  rate?: number;
  durationMs?: number;
  firstInvoiceNo?: number;
}

/** Every line each simulator run of `runLogDir` could have sent, rebuilt from its seed, by key. */
async function rebuildRuns(runLogDir: string): Promise<Map<string, RebuiltLine>> {
  const out = new Map<string, RebuiltLine>();
  for (const name of (await fs.readdir(runLogDir)).filter((n) => n.endsWith('.ndjson'))) {
    const text = await fs.readFile(path.join(runLogDir, name), 'utf8');
    const header = JSON.parse(text.slice(0, text.indexOf('\n'))) as RunHeader;
    if (header.kind !== 'simulate' || header.seed === undefined)
      throw new Error(`run log ${name}: not a seeded simulator run, its lines cannot be rebuilt`);
    const count =
      header.lines ??
      (header.rate !== undefined && header.durationMs !== undefined
        ? Math.ceil((header.rate * header.durationMs) / 1000)
        : undefined);
    if (count === undefined) throw new Error(`run log ${name}: neither a line count nor a rate and duration`);
    const generator = createGenerator({
      seed: header.seed,
      ...(header.firstInvoiceNo !== undefined ? { firstInvoiceNo: header.firstInvoiceNo } : {}),
    });
    for (let i = 0; i < count; i++) {
      const l = generator.next();
      const key = lineKey(l);
      if (out.has(key)) throw new Error(`runs in ${runLogDir} reuse the key ${l.invoiceNo}/${l.lineNo}`);
      const total = lineTotal(l.quantity, String(l.unitPrice));
      out.set(key, { country: l.country, quantity: l.quantity, lineNo: l.lineNo, lineTotal: total });
    }
  }
  return out;
}

function sum(lines: Iterable<{ lineNo: number; quantity: number; lineTotal: string }>): Measures {
  const all = [...lines];
  return {
    lines: all.length,
    // Every invoice has exactly one line 1: the aggregates count invoices that way (consumers/aggregates.ts).
    invoices: all.filter((l) => l.lineNo === 1).length,
    quantity: all.reduce((s, l) => s + l.quantity, 0),
    revenue: sumMoney(all.map((l) => l.lineTotal)),
  };
}

export interface Expected {
  aggregates: Aggregates;
  /** Lines the run logs accepted. */
  accepted: number;
  /**
   * Lines DynamoDB holds that no run log records: accepted by the API, but the producer was killed
   * before it wrote the 202 down. Only a test that kills the producer may see any.
   */
  unlogged: number;
}

/**
 * The aggregates the accepted lines must add up to: the run logs' lines (their logged totals) plus
 * the stored lines no run log recorded, which must be lines the simulator really sent.
 */
export async function expectedAggregates(dataDir: string, endpoints: Endpoints): Promise<Expected> {
  const runLogDir = path.join(dataDir, 'runs');
  const accepted = await readAcceptedLines(runLogDir);
  const rebuilt = await rebuildRuns(runLogDir);
  const counted: RebuiltLine[] = [];
  for (const [key, milli] of accepted.lines) {
    const line = rebuilt.get(key);
    const logged = formatMilli(milli);
    if (!line || line.lineTotal !== logged)
      throw new Error(
        `run logs: ${key} (${logged}) is not what its run's seed rebuilds (${line?.lineTotal})`,
      );
    counted.push({ ...line, lineTotal: logged });
  }
  const clients = createClients({
    region: endpoints.region,
    endpoints: { dynamodb: endpoints.dynamodb },
    local: true,
  });
  let unlogged = 0;
  try {
    const stored = await dynamoLineSource({
      client: clients.dynamodb,
      table: endpoints.names.table,
      mode: 'scan',
    }).linesOf(new Set());
    for (const s of stored) {
      const key = lineKey(s);
      if (accepted.lines.has(key)) continue;
      const line = rebuilt.get(key);
      if (!line || line.lineTotal !== s.lineTotal)
        throw new Error(`DynamoDB holds ${s.invoiceNo}/${s.lineNo} (${s.lineTotal}), which no run sent`);
      unlogged++;
      counted.push(line);
    }
  } finally {
    clients.destroy();
  }
  const byCountry = new Map<string, RebuiltLine[]>();
  for (const l of counted) byCountry.set(l.country, [...(byCountry.get(l.country) ?? []), l]);
  return {
    aggregates: {
      totals: sum(counted),
      countries: Object.fromEntries([...byCountry].map(([c, ls]) => [c, sum(ls)])),
    },
    accepted: accepted.lines.size,
    unlogged,
  };
}

/** The aggregates as the API serves them (`GET /stats/countries`: the store's getCountryStats). */
export async function servedAggregates(apiUrl: string): Promise<Aggregates> {
  const res = await fetch(`${apiUrl}/stats/countries`);
  if (res.status !== 200) throw new Error(`GET /stats/countries answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as CountryStatsBody;
  const pick = (m: Measures): Measures => ({
    lines: m.lines,
    invoices: m.invoices,
    quantity: m.quantity,
    revenue: m.revenue,
  });
  return {
    totals: pick(body.totals),
    countries: Object.fromEntries(body.countries.map((c) => [c.country, pick(c)])),
  };
}

/**
 * True when every shard's checkpoint is at the stream's tip: every record on the stream went
 * through the consumer, and the handler's writes (aggregates included) finished before the
 * checkpoint moved. Reads the local poller's checkpoints under `<dataDir>/checkpoints`.
 */
async function streamDrained(dataDir: string, endpoints: Endpoints): Promise<boolean> {
  const clients = createClients({
    region: endpoints.region,
    endpoints: { kinesis: endpoints.kinesis },
    local: true,
  });
  const checkpoints = new CheckpointStore(path.join(dataDir, 'checkpoints'), endpoints.names.stream);
  try {
    const { Shards = [] } = await clients.kinesis.send(
      new ListShardsCommand({ StreamName: endpoints.names.stream }),
    );
    for (const { ShardId } of Shards) {
      const done = await checkpoints.load(ShardId as string);
      const { ShardIterator } = await clients.kinesis.send(
        new GetShardIteratorCommand({
          StreamName: endpoints.names.stream,
          ShardId,
          ...(done
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: done }
            : { ShardIteratorType: 'TRIM_HORIZON' }),
        }),
      );
      const { Records = [] } = await clients.kinesis.send(new GetRecordsCommand({ ShardIterator, Limit: 1 }));
      if (Records.length > 0) return false;
    }
    return true;
  } finally {
    clients.destroy();
  }
}

/**
 * Waits until the consumer has handled every record on the stream (so no redelivery is still to
 * come), then returns the served aggregates with what they must be. No waiting on the figures
 * themselves: a double count never goes away, so one read after the drain is the verdict.
 */
export async function aggregatesAfterDrain(
  dataDir: string,
  endpoints: Endpoints,
  apiUrl: string,
): Promise<{ served: Aggregates } & Expected> {
  await eventually(async () => ((await streamDrained(dataDir, endpoints)) ? true : undefined), {
    timeoutMs: 120_000,
    intervalMs: 250,
    what: 'the consumer to reach the end of the stream',
  });
  const served = await servedAggregates(apiUrl);
  return { served, ...(await expectedAggregates(dataDir, endpoints)) };
}
