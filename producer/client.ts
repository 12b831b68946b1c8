import { type ApiErrorBody, readErrorBody } from '#core/api-contract';
import type { InvoiceLineInput } from '#core/invoice-line';
import { backoffMs, sleep } from '#core/resilience';

/**
 * Batching HTTP client for `POST <target>/invoices`. Bounds requests in flight, splits on 413, re-sends the
 * valid rest of a 400 (read by the API's contract, core/api-contract.ts), retries 429/5xx/network errors with
 * the project's backoff (core/resilience.ts, equal jitter, Retry-After honoured; safe: a line's key
 * (invoiceNo, lineNo) is idempotent downstream). Every line ends accepted, rejected (with its reason) or
 * failed (retries exhausted or a fatal answer): none is dropped silently.
 */

export interface PosterOptions {
  /** API base URL (`http://127.0.0.1:3000` or an API Gateway stage URL); `/invoices` is appended. */
  target: string;
  apiKey?: string;
  /** Lines per request (default 500). */
  batchSize?: number;
  /** Requests in flight at once (default 4). */
  maxInFlight?: number;
  /** How long a partial batch waits for more lines before it is sent (default 100 ms). */
  lingerMs?: number;
  /** Body size above which a batch is split before sending (default 4 MiB; the API refuses 5 MiB). */
  maxBodyBytes?: number;
  /** Retries of one request on 429/5xx/network errors before its lines count as failed (default 8). */
  maxRetries?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** After a 202: the lines the API accepted (e.g. to append them to the run log). Awaited. */
  onAccepted?: (lines: InvoiceLineInput[]) => void | Promise<void>;
  onRejected?: (e: { line: InvoiceLineInput; reason: string }) => void;
  onFailed?: (e: { lines: InvoiceLineInput[]; reason: string }) => void;
  onRetry?: (e: { attempt: number; reason: string; delayMs: number }) => void;
}

export interface PosterStats {
  /** Lines handed to send(). */
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  /** Requests repeated after 429/5xx/network errors. */
  retried: number;
  requests: number;
  bytes: number;
  inFlight: number;
}

export interface PosterSummary extends PosterStats {
  elapsedMs: number;
  /** Set when the API gave an answer that stops the run (401, 403, 404, ...). */
  fatal?: string;
}

export interface Poster {
  /** Queues a line; resolves when there is room for more (backpressure). Throws after a fatal answer. */
  send(line: InvoiceLineInput): Promise<void>;
  /** Sends what is queued and waits for every request to finish. */
  flush(): Promise<PosterSummary>;
  stats(): PosterStats;
}

export class PosterFatalError extends Error {
  override name = 'PosterFatalError';
}

class RetryableError extends Error {
  override name = 'RetryableError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The options with their defaults filled in. */
interface PosterSettings {
  url: string;
  headers: Record<string, string>;
  batchSize: number;
  maxInFlight: number;
  lingerMs: number;
  maxBodyBytes: number;
  maxRetries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  timeoutMs: number;
}

function settingsOf(opts: PosterOptions): PosterSettings {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiKey) headers['x-api-key'] = opts.apiKey;
  return {
    url: `${opts.target.replace(/\/+$/, '')}/invoices`,
    headers,
    batchSize: opts.batchSize ?? 500,
    maxInFlight: opts.maxInFlight ?? 4,
    lingerMs: opts.lingerMs ?? 100,
    maxBodyBytes: opts.maxBodyBytes ?? 4 * 1024 * 1024,
    maxRetries: opts.maxRetries ?? 8,
    retryBaseMs: opts.retryBaseMs ?? 100,
    retryMaxMs: opts.retryMaxMs ?? 10_000,
    timeoutMs: opts.timeoutMs ?? 30_000,
  };
}

/** The API's answer to one request that is not to be retried. */
interface Verdict {
  status: number;
  json: unknown;
  text: string;
}

/** One request; resolves with the API's verdict or throws RetryableError. */
async function post(cfg: PosterSettings, body: string, s: PosterStats): Promise<Verdict> {
  s.requests++;
  s.bytes += Buffer.byteLength(body);
  let res: Response;
  try {
    res = await fetch(cfg.url, {
      method: 'POST',
      headers: cfg.headers,
      body,
      signal: AbortSignal.timeout(cfg.timeoutMs),
    });
  } catch (cause) {
    const reason =
      (cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : String(cause);
    throw new RetryableError(`network error: ${reason}`, undefined, { cause });
  }
  const text = await res.text().catch(() => '');
  if (res.status === 429 || res.status >= 500) {
    const retryAfter = Number(res.headers.get('retry-after'));
    throw new RetryableError(
      `HTTP ${res.status}`,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
    );
  }
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** Posts one body until the API gives a verdict, or gives up (`{ gaveUp: reason }`) after the retry bound. */
async function postWithRetries(
  cfg: PosterSettings,
  body: string,
  s: PosterStats,
  onRetry: PosterOptions['onRetry'],
): Promise<Verdict | { gaveUp: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await post(cfg, body, s);
    } catch (error) {
      if (!(error instanceof RetryableError)) throw error;
      if (attempt >= cfg.maxRetries) return { gaveUp: `${error.message} after ${attempt + 1} attempts` };
      // Equal jitter: parallel requests do not retry in lockstep, and none comes back at once.
      const delayMs = Math.max(
        error.retryAfterMs ?? 0,
        backoffMs(attempt + 1, { baseMs: cfg.retryBaseMs, maxMs: cfg.retryMaxMs, jitter: 'equal' }),
      );
      s.retried++;
      onRetry?.({ attempt: attempt + 1, reason: error.message, delayMs });
      await sleep(delayMs);
    }
  }
}

/** The reasons a 400 gives for the lines it names under `invalid`, by index (out-of-range indexes ignored). */
function invalidLines(lines: InvoiceLineInput[], answer: Partial<ApiErrorBody>): Map<number, string> {
  const bad = new Map<number, string>();
  for (const b of answer.invalid ?? [])
    if (b.index >= 0 && b.index < lines.length) bad.set(b.index, b.reason);
  return bad;
}

function emptyStats(): PosterStats {
  return { sent: 0, accepted: 0, rejected: 0, failed: 0, retried: 0, requests: 0, bytes: 0, inFlight: 0 };
}

export function createPoster(opts: PosterOptions): Poster {
  const cfg = settingsOf(opts);
  const started = Date.now();
  const s = emptyStats();
  let fatal: string | undefined;
  let batch: InvoiceLineInput[] = [];
  let timer: NodeJS.Timeout | undefined;
  const running = new Set<Promise<void>>();
  let waiters: (() => void)[] = [];

  const fail = (lines: InvoiceLineInput[], reason: string) => {
    if (lines.length === 0) return;
    s.failed += lines.length;
    opts.onFailed?.({ lines, reason });
  };

  const reject = (line: InvoiceLineInput, reason: string) => {
    s.rejected++;
    opts.onRejected?.({ line, reason });
  };

  /**
   * A 400: rejects the lines it names under `invalid` with the API's reason and returns the rest. A
   * 400 naming no line condemns the whole request: every line is rejected with the API's message.
   */
  const refuse = (lines: InvoiceLineInput[], answer: Partial<ApiErrorBody>, text: string) => {
    const bad = invalidLines(lines, answer);
    if (bad.size === 0) {
      const reason = describe(answer, text) || 'HTTP 400';
      for (const line of lines) reject(line, reason);
      return [];
    }
    return lines.filter((line, i) => {
      const reason = bad.get(i);
      if (reason !== undefined) reject(line, reason);
      return reason === undefined;
    });
  };

  const deliverHalves = async (lines: InvoiceLineInput[]) => {
    const half = Math.ceil(lines.length / 2);
    await deliver(lines.slice(0, half));
    await deliver(lines.slice(half));
  };

  const deliver = async (lines: InvoiceLineInput[]): Promise<void> => {
    if (lines.length === 0) return;
    if (fatal) return fail(lines, fatal);
    const body = JSON.stringify(lines);
    if (Buffer.byteLength(body) > cfg.maxBodyBytes && lines.length > 1) return deliverHalves(lines);
    const verdict = await postWithRetries(cfg, body, s, opts.onRetry);
    if ('gaveUp' in verdict) return fail(lines, verdict.gaveUp);
    const { status, json, text } = verdict;
    if (status >= 200 && status < 300) {
      s.accepted += lines.length;
      await opts.onAccepted?.(lines);
      return;
    }
    if (status === 413) {
      if (lines.length === 1) return reject(lines[0] as InvoiceLineInput, 'payload too large (413)');
      return deliverHalves(lines);
    }
    const answer = readErrorBody(json);
    // The batch is all-or-nothing: nothing of it was accepted, so the valid rest goes again.
    if (status === 400) return deliver(refuse(lines, answer, text));
    fatal = `HTTP ${status} from ${cfg.url}: ${describe(answer, text)}`;
    return fail(lines, fatal);
  };

  const dispatch = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    s.inFlight++;
    const p = deliver(lines)
      .catch((error: unknown) => fail(lines, `unexpected error: ${(error as Error).message}`))
      .finally(() => {
        s.inFlight--;
        running.delete(p);
        const woken = waiters;
        waiters = [];
        for (const wake of woken) wake();
      });
    running.add(p);
  };

  return {
    async send(line) {
      if (fatal) throw new PosterFatalError(fatal);
      s.sent++;
      batch.push(line);
      if (batch.length >= cfg.batchSize) dispatch();
      else if (!timer) timer = setTimeout(dispatch, cfg.lingerMs);
      while (s.inFlight >= cfg.maxInFlight) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
        });
      }
    },
    async flush() {
      dispatch();
      while (running.size > 0) await Promise.all([...running]);
      return { ...s, elapsedMs: Date.now() - started, ...(fatal ? { fatal } : {}) };
    },
    stats: () => ({ ...s }),
  };
}

/** An error answer for a person: the API's message (with its code), else the start of the body. */
function describe(answer: Partial<ApiErrorBody>, text: string): string {
  if (answer.message !== undefined)
    return answer.error ? `${answer.error}: ${answer.message}` : answer.message;
  return answer.error ?? text.slice(0, 200);
}
