import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { type ConsumerEvent, startConsumerProcess } from '#cli/consumer-process';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { checkHealth } from '#local/health';
import { invoiceLines } from '#test/helpers/lines';
import { eventually, testConfig } from '#test/helpers/stack';

/**
 * The stream consumer in its own process (`npm start`'s layout, cli/consumer-process.ts): a consumer
 * that dies is noticed and restarted; one that keeps dying is left down and shown DOWN by the health
 * check (`retail-pipeline stack status`); a stop leaves no process behind.
 */
describe('the consumer process, supervised', { timeout: 180_000 }, () => {
  let pipeline: Pipeline;
  let dataDir = '';

  beforeAll(async () => {
    const config = await testConfig();
    dataDir = config.dataDir;
    pipeline = await startPipeline({
      config,
      logger: createLogger('silent'),
      scheduleLoads: false,
      totesys: false,
      // A second death within the window is one too many: the give-up path without killing five times.
      consumerProcess: { restart: { max: 1, windowMs: 10 * 60_000 } },
    });
  }, 180_000);
  afterAll(async () => {
    await pipeline?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  /** The next consumer event that `match` accepts (registered before the action that causes it). */
  function nextEvent<E extends ConsumerEvent>(match: (e: ConsumerEvent) => e is E): Promise<E> {
    return new Promise((resolve) => {
      const off = pipeline.consumer.onEvent((e) => {
        if (!match(e)) return;
        off();
        resolve(e);
      });
    });
  }
  const exited = (e: ConsumerEvent): e is Extract<ConsumerEvent, { type: 'exited' }> => e.type === 'exited';
  const started = (e: ConsumerEvent): e is Extract<ConsumerEvent, { type: 'started' }> =>
    e.type === 'started';

  const consumerHealth = async () => {
    const health = await checkHealth(pipeline.stack.endpoints);
    return health.find((h) => h.service === 'consumer');
  };

  async function post(invoiceNo: string, count: number): Promise<void> {
    const res = await fetch(`${pipeline.apiUrl}/invoices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(invoiceLines(count, { invoiceNo })),
    });
    expect(res.status).toBe(202);
  }
  const stored = (invoiceNo: string, count: number) =>
    eventually(
      async () => {
        const res = await fetch(`${pipeline.apiUrl}/invoices/${invoiceNo}`);
        if (res.status !== 200) return undefined;
        const body = (await res.json()) as { lines: unknown[] };
        return body.lines.length === count ? true : undefined;
      },
      { timeoutMs: 60_000, what: `invoice ${invoiceNo} with ${count} lines stored` },
    );

  it('runs in a process of its own, reported up by the health check', async () => {
    const status = pipeline.consumer.status();
    expect(status.state).toBe('running');
    expect(status.pid).not.toBe(process.pid);
    expect((await consumerHealth())?.ok).toBe(true);
    await post('7300001', 3);
    await stored('7300001', 3);
  });

  it('killed (-9): noticed, restarted, and the new process consumes what arrived meanwhile', async () => {
    const pid = pipeline.consumer.status().pid as number;
    const gone = nextEvent(exited);
    const back = nextEvent(started);
    process.kill(pid, 'SIGKILL');
    const exit = await gone;
    expect([exit.pid, exit.signal, exit.next]).toEqual([pid, 'SIGKILL', 'restart']);
    // Accepted while no consumer runs: the lines wait on the stream.
    await post('7300002', 4);
    const restart = await back;
    expect(restart.pid).not.toBe(pid);
    expect(pipeline.consumer.status()).toMatchObject({ state: 'running', pid: restart.pid, restarts: 1 });
    await stored('7300002', 4);
    expect((await consumerHealth())?.ok).toBe(true);
  });

  it('dying again within the window: left down, loudly (DOWN in the health check), the API still up', async () => {
    const pid = pipeline.consumer.status().pid as number;
    const gone = nextEvent(exited);
    process.kill(pid, 'SIGKILL');
    expect((await gone).next).toBe('give-up');
    expect(pipeline.consumer.status()).toMatchObject({ state: 'failed', pid: null });
    const health = await checkHealth(pipeline.stack.endpoints);
    const consumer = health.find((h) => h.service === 'consumer');
    expect(consumer?.ok).toBe(false);
    expect(consumer?.detail).toContain('failed');
    expect(health.find((h) => h.service === 'api')?.ok).toBe(true);
    await expect(pipeline.poller.idle()).rejects.toThrow(/failed/);
  });

  it('a stop leaves no consumer process behind', async () => {
    // A fresh pipeline would cost a minute here; the supervisor's stop path is the same after a
    // restart, so check it on a consumer started by hand through the same options.
    const consumer = await startConsumerProcess({
      config: pipeline.stack.config,
      logger: createLogger('silent'),
    });
    const pid = consumer.status().pid as number;
    await consumer.poller.stop();
    const alive = await fs.access(`/proc/${pid}`).then(
      () => true,
      () => false,
    );
    expect(alive).toBe(false);
    expect(consumer.status().state).toBe('stopped');
  });
});
