/**
 * Bench-only probes for the stream bench's (c): where a line's accepted -> stream-visible time goes.
 * The pipeline's process times its PutRecords per record (putProbe); the consumer's process runs
 * bench/stream-probe-child.ts, which times when GetRecords handed each record over and when the
 * write of its line chunk was sent; both measure their own event loop's stalls. Nothing here runs
 * under `npm start`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { FirehoseClient } from '@aws-sdk/client-firehose';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { chunkOwners, isChunk } from '#adapters/invoice-items';
import { percentile } from '#core/percentile';

/** A stall: the event loop ran a timer `lateMs` late, the timer being due at `at` (epoch ms). */
export type Stall = [at: number, lateMs: number];

export interface StallReport {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Stalls of 20 ms or more, in time order. */
  stalls: Stall[];
}

/** How late a 10 ms interval timer runs, plus Node's own event loop delay histogram. */
export function stallMeter() {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const stalls: Stall[] = [];
  const everyMs = 10;
  let due = Date.now() + everyMs;
  const timer = setInterval(() => {
    const now = Date.now();
    const late = now - due;
    if (late >= 20) stalls.push([due, late]);
    due = now + everyMs;
  }, everyMs);
  timer.unref();
  return {
    report(): StallReport {
      const ms = (ns: number) => Math.round(ns / 1e6);
      return {
        p50Ms: ms(histogram.percentile(50)),
        p99Ms: ms(histogram.percentile(99)),
        maxMs: ms(histogram.max),
        stalls: [...stalls],
      };
    },
    reset() {
      histogram.reset();
      stalls.length = 0;
    },
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}

type Handler = (args: { input: unknown }) => Promise<{ output: unknown }>;

/** Adds a middleware that sees each call's command name, input and output, at the initialize step. */
function watch(
  client: KinesisClient | DynamoDBClient | FirehoseClient,
  name: string,
  seen: (command: string, input: unknown, output: unknown, sentAt: number) => void,
  before?: (command: string, input: unknown) => void,
): () => void {
  const mw = (next: Handler, context: { commandName?: string }) => async (args: { input: unknown }) => {
    const command = context.commandName ?? '';
    const sentAt = Date.now();
    before?.(command, args.input);
    const out = await next(args);
    seen(command, args.input, out.output, sentAt);
    return out;
  };
  const stack = client.middlewareStack as unknown as {
    add(m: unknown, o: { step: 'initialize'; name: string; priority: 'high' }): void;
  };
  stack.add(mw, { step: 'initialize', name, priority: 'high' });
  return () => client.middlewareStack.remove(name);
}

/** Per sequence number: when its PutRecords was sent and when it returned (the API's writer). */
export function putProbe(kinesis: KinesisClient) {
  const times = new Map<string, [sentAt: number, returnedAt: number]>();
  const stop = watch(kinesis, 'benchPutProbe', (command, _input, output, sentAt) => {
    if (command !== 'PutRecordsCommand') return;
    const now = Date.now();
    for (const r of (output as { Records?: { SequenceNumber?: string }[] }).Records ?? [])
      if (r.SequenceNumber) times.set(r.SequenceNumber, [sentAt, now]);
  });
  return { times, stop };
}

/** What the consumer's process saw, per record (sequence number), and its event loop. */
export interface ConsumerProbeReport {
  /** [sequence number, GetRecords returned it, kinesalite's arrival stamp]. */
  seen: [string, number, number][];
  /**
   * [sequence number, the first read of its invoice's header after it was seen: its batch's line
   * writes began]. Absent for a record whose invoice the store's ownership cache knew.
   */
  readSent: [string, number][];
  /** [sequence number, the BatchWriteItem carrying its first line chunk was sent]. */
  chunkSent: [string, number][];
  eventLoop: StallReport;
  /** Every call of the consumer's clients: [command, sent, returned] (epoch ms). */
  timeline: [string, number, number][];
  /** Per command of the consumer's clients: calls and latency p50 / p99 / max ms. */
  calls: Record<string, { calls: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null }>;
}

/** The consumer's side of the probe (run in its process by bench/stream-probe-child.ts). */
export function consumerProbe(clients: {
  kinesis: KinesisClient;
  dynamodb: DynamoDBClient;
  firehose?: FirehoseClient;
}) {
  const seen = new Map<string, [number, number]>();
  const invoiceOf = new Map<string, string>();
  const readSent = new Map<string, number[]>();
  const chunkSent = new Map<string, number>();
  const loop = stallMeter();
  const durations = new Map<string, number[]>();
  const timeline: [string, number, number][] = [];
  const time = (command: string, sentAt: number) => {
    const list = durations.get(command) ?? [];
    durations.set(command, list);
    const now = Date.now();
    list.push(now - sentAt);
    timeline.push([command.replace(/Command$/, ''), sentAt, now]);
  };
  watch(clients.kinesis, 'benchSeenProbe', (command, _input, output, sentAt) => {
    time(command, sentAt);
    if (command !== 'GetRecordsCommand') return;
    const now = Date.now();
    type Got = { SequenceNumber?: string; PartitionKey?: string; ApproximateArrivalTimestamp?: Date };
    for (const r of (output as { Records?: Got[] }).Records ?? []) {
      if (!r.SequenceNumber || seen.has(r.SequenceNumber)) continue;
      seen.set(r.SequenceNumber, [now, r.ApproximateArrivalTimestamp?.getTime() ?? 0]);
      invoiceOf.set(r.SequenceNumber, r.PartitionKey ?? '');
    }
  });
  watch(
    clients.dynamodb,
    'benchChunkProbe',
    (command, _input, _output, sentAt) => time(command, sentAt),
    (command, input) => {
      const now = Date.now();
      if (command === 'BatchGetItemCommand') {
        type Keys = Record<string, { Keys?: { pk?: { S?: string } }[] }>;
        for (const t of Object.values((input as { RequestItems?: Keys }).RequestItems ?? {}))
          for (const k of t.Keys ?? []) {
            const invoiceNo = k.pk?.S?.slice('INV#'.length) ?? '';
            const times = readSent.get(invoiceNo) ?? [];
            readSent.set(invoiceNo, times);
            times.push(now);
          }
      }
      if (command !== 'BatchWriteItemCommand') return;
      const tables = (input as { RequestItems?: Record<string, { PutRequest?: { Item?: object } }[]> })
        .RequestItems;
      for (const requests of Object.values(tables ?? {}))
        for (const r of requests) {
          const item = r.PutRequest?.Item as Parameters<typeof isChunk>[0] | undefined;
          if (!item || !isChunk(item)) continue;
          const seq = chunkOwners(item).owner.split('/').at(-1) ?? '';
          if (!chunkSent.has(seq)) chunkSent.set(seq, now);
        }
    },
  );
  if (clients.firehose)
    watch(clients.firehose, 'benchArchiveProbe', (command, _i, _o, sentAt) => time(command, sentAt));
  return {
    report: (): ConsumerProbeReport => ({
      seen: [...seen].map(([s, [at, arrived]]) => [s, at, arrived]),
      // The first read of the record's invoice after the record was seen (none: the cache knew it).
      readSent: [...invoiceOf].flatMap(([s, invoiceNo]): [string, number][] => {
        const after = seen.get(s)?.[0] ?? 0;
        const at = readSent.get(invoiceNo)?.find((t) => t >= after);
        return at === undefined ? [] : [[s, at]];
      }),
      chunkSent: [...chunkSent],
      eventLoop: loop.report(),
      timeline: [...timeline],
      calls: Object.fromEntries(
        [...durations].map(([command, list]) => {
          const sorted = [...list].sort((a, b) => a - b);
          const q = (x: number) => percentile(sorted, x);
          return [command, { calls: list.length, p50Ms: q(50), p99Ms: q(99), maxMs: sorted.at(-1) ?? null }];
        }),
      ),
    }),
    reset() {
      seen.clear();
      invoiceOf.clear();
      readSent.clear();
      chunkSent.clear();
      durations.clear();
      timeline.length = 0;
      loop.reset();
    },
  };
}

const PROBE_REPORT = 'bench-probe-report';
const PROBE_RESET = 'bench-probe-reset';
export const probeMessages = { report: PROBE_REPORT, reset: PROBE_RESET } as const;

/** One line's path, epoch ms at each point (undefined where a probe missed it). */
export interface LineTimes {
  acceptedAt: number;
  putSentAt?: number | undefined;
  putReturnedAt?: number | undefined;
  arrivedAt?: number | undefined;
  seenAt?: number | undefined;
  readSentAt?: number | undefined;
  chunkSentAt?: number | undefined;
  visibleAt: number;
}

const HOPS = [
  ['accepted -> PutRecords sent', 'acceptedAt', 'putSentAt'],
  ['PutRecords sent -> returned', 'putSentAt', 'putReturnedAt'],
  ['PutRecords returned -> GetRecords returned it', 'putReturnedAt', 'seenAt'],
  ['GetRecords returned -> ownership read sent (waiting for its turn)', 'seenAt', 'readSentAt'],
  ['ownership read sent -> chunk write sent', 'readSentAt', 'chunkSentAt'],
  ['chunk write sent -> acknowledged (visible)', 'chunkSentAt', 'visibleAt'],
] as const;

/**
 * Each hop's p50 / p99 / max over all lines, and its mean over the slowest 1% of lines (by accepted
 * -> visible): which hops the tail is made of.
 */
export function hopSplit(lines: readonly LineTimes[]) {
  const total = (l: LineTimes) => l.visibleAt - l.acceptedAt;
  const sorted = [...lines].sort((a, b) => total(a) - total(b));
  const tail = sorted.slice(Math.floor(sorted.length * 0.99));
  const out: Record<
    string,
    { p50Ms: number | null; p99Ms: number | null; maxMs: number | null; tailMeanMs: number | null }
  > = {};
  for (const [name, from, to] of HOPS) {
    const span = (l: LineTimes) => {
      const a = l[from];
      const b = l[to];
      return a === undefined || b === undefined ? undefined : b - a;
    };
    const all = lines
      .map(span)
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    const inTail = tail.map(span).filter((x): x is number => x !== undefined);
    out[name] = {
      p50Ms: percentile(all, 50),
      p99Ms: percentile(all, 99),
      maxMs: all.at(-1) ?? null,
      tailMeanMs: inTail.length ? Math.round(inTail.reduce((n, x) => n + x, 0) / inTail.length) : null,
    };
  }
  return { lines: lines.length, tailLines: tail.length, hops: out };
}

/** How many of the slowest 1% of lines had a stall of `minMs` or more in a process while on their way. */
export function tailStalls(lines: readonly LineTimes[], stalls: Record<string, Stall[]>, minMs = 50) {
  const total = (l: LineTimes) => l.visibleAt - l.acceptedAt;
  const sorted = [...lines].sort((a, b) => total(a) - total(b));
  const tail = sorted.slice(Math.floor(sorted.length * 0.99));
  const out: Record<string, { stalls: number; maxMs: number; tailLinesHit: number }> = {};
  for (const [name, list] of Object.entries(stalls)) {
    const big = list.filter(([, late]) => late >= minMs);
    const hit = tail.filter((l) => big.some(([at, late]) => at < l.visibleAt && at + late > l.acceptedAt));
    out[name] = {
      stalls: big.length,
      maxMs: list.reduce((m, [, late]) => Math.max(m, late), 0),
      tailLinesHit: hit.length,
    };
  }
  return { minStallMs: minMs, tailLines: tail.length, byProcess: out };
}

/**
 * The slowest lines, each with its times relative to its acceptance, the consumer's calls in flight
 * while it waited, and the stalls and batch path events around it: what one tail line waited for.
 */
export function slowest(
  lines: readonly LineTimes[],
  consumer: ConsumerProbeReport | undefined,
  stalls: Record<string, Stall[]>,
  events: readonly [number, string][],
  since: number,
  count = 5,
) {
  const total = (l: LineTimes) => l.visibleAt - l.acceptedAt;
  const worst = [...lines].sort((a, b) => total(b) - total(a));
  const picked: LineTimes[] = [];
  for (const l of worst) {
    if (picked.length >= count) break;
    // One line per stretch of time: the lines of one slow batch all look alike.
    if (picked.some((p) => Math.abs(p.acceptedAt - l.acceptedAt) < 1000)) continue;
    picked.push(l);
  }
  return picked.map((l) => {
    const rel = (t: number | undefined) => (t === undefined ? null : t - l.acceptedAt);
    const from = l.acceptedAt;
    const to = l.visibleAt;
    return {
      atMs: l.acceptedAt - since,
      times: {
        putSent: rel(l.putSentAt),
        putReturned: rel(l.putReturnedAt),
        arrived: rel(l.arrivedAt),
        seen: rel(l.seenAt),
        readSent: rel(l.readSentAt),
        chunkSent: rel(l.chunkSentAt),
        visible: rel(l.visibleAt),
      },
      consumerCalls: (consumer?.timeline ?? [])
        .filter(([, a, b]) => a < to && b > from)
        .map(([c, a, b]) => `${c} ${a - from}..${b - from}`),
      stalls: Object.fromEntries(
        Object.entries(stalls).map(([k, list]) => [
          k,
          list
            .filter(([at, late]) => at < to && at + late > from)
            .map(([at, late]) => `${at - from}+${late}`),
        ]),
      ),
      batchEvents: events
        .filter(([t]) => t + since > from - 2000 && t + since < to)
        .map(([t, k]) => `${t + since - from} ${k}`),
    };
  });
}
