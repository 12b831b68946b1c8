import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InvoiceLineInput } from '#core/invoice-line';
import { createGenerator } from '#producer/generator';
import { createPacer } from '#producer/pace';
import { highestInvoiceNumber, newRunId, openRunLog } from '#producer/run-log';

const line = (invoiceNo: string, lineNo: number): InvoiceLineInput => ({
  invoiceNo,
  lineNo,
  stockCode: '85123A',
  description: null,
  quantity: 1,
  invoiceDate: '2010-12-01T08:26:00',
  unitPrice: '2.55',
  customerId: null,
  country: 'United Kingdom',
});

describe('the run log', () => {
  it('records each accepted line with its exact total', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-runs-'));
    try {
      const log = await openRunLog(dir, 'r', {});
      await log.appendBatch([{ ...line('536365', 1), quantity: 6, unitPrice: '2.55' }, line('536365', 2)]);
      await log.close({ accepted: 2 });
      const rows = (await fs.readFile(log.path, 'utf8'))
        .trim()
        .split('\n')
        .map((r) => JSON.parse(r));
      expect(rows.map((r) => r.t)).toEqual(['run', 'batch', 'summary']);
      expect(rows[1].lines).toEqual([
        ['536365', 1, '15.300'],
        ['536365', 2, '2.550'],
      ]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('newRunId', () => {
  it('names the kind and the start instant, unique per call', () => {
    const at = new Date('2024-05-06T07:08:09.123Z');
    expect(newRunId('replay', at)).toMatch(/^replay-20240506T070809Z-[a-z0-9]{1,4}$/);
    expect(newRunId('x')).not.toBe(newRunId('x'));
  });
});

describe('createPacer', () => {
  /** A clock the pacer's sleeps move forward, and the sleeps it asked for. */
  function fakeTime() {
    const t = { clock: 0, waits: [] as number[] };
    return Object.assign(t, {
      now: () => t.clock,
      sleep: async (ms: number) => {
        t.waits.push(ms);
        t.clock += ms;
      },
    });
  }

  it('schedules line i at start + i/rate, without drift from late wake-ups', async () => {
    const time = fakeTime();
    const pacer = createPacer({ rate: 100, now: time.now, sleep: time.sleep });
    await pacer.wait();
    time.clock = 50; // 5 lines' worth of time passed: the next lines are overdue and go at once
    for (let i = 0; i < 4; i++) await pacer.wait();
    await pacer.wait(); // line 5 due at 50 ms: now
    expect(time.waits).toEqual([]);
    await pacer.wait(); // line 6 due at 60 ms: 10 ms ahead
    expect(time.waits).toEqual([10]);
    time.clock += 3; // woke 3 ms late: line 7 (due at 70 ms) waits only the rest
    await pacer.wait();
    expect(time.waits).toEqual([10, 7]);
  });

  it('speed maps source time to wall time', async () => {
    const time = fakeTime();
    const pacer = createPacer({ speed: 60_000, now: time.now, sleep: time.sleep });
    await pacer.wait(new Date('2010-12-01T08:00:00Z'));
    await pacer.wait(new Date('2010-12-01T08:05:00Z')); // 300 s of source at 60,000x = 5 ms
    await pacer.wait(new Date('2010-12-01T08:30:00Z')); // 30 ms after the first: 25 ms more
    expect(time.waits).toEqual([5, 25]);
  });

  it('an aborted signal stops the wait', async () => {
    const controller = new AbortController();
    const pacer = createPacer({ rate: 0.5, signal: controller.signal });
    await pacer.wait();
    const waiting = pacer.wait();
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('highestInvoiceNumber', () => {
  it('finds the highest number any earlier run delivered, C/A prefixes and torn rows included', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-runs-'));
    try {
      expect(await highestInvoiceNumber(dir)).toBeUndefined();
      const a = await openRunLog(dir, 'a', {});
      await a.appendBatch([line('536365', 1), line('C536999', 1)]);
      await a.close({});
      const b = await openRunLog(dir, 'b', {});
      await b.appendBatch([line('536500', 2)]);
      await fs.appendFile(b.path, '{"t":"batch","lines":[["999'); // killed mid-write
      expect(await highestInvoiceNumber(dir)).toBe(536999);
      expect(await highestInvoiceNumber(path.join(dir, 'absent'))).toBeUndefined();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('lets a second simulator run continue past the first one instead of reusing keys', () => {
    const first = createGenerator({ seed: 1 });
    const firstKeys = new Set(
      Array.from({ length: 2000 }, () => first.next().invoiceNo.replace(/^[A-Z]/, '')),
    );
    const highest = Math.max(...[...firstKeys].map(Number));
    const second = createGenerator({ seed: 1, firstInvoiceNo: highest + 1 });
    const secondKeys = Array.from({ length: 2000 }, () => second.next().invoiceNo);
    // Cancellations refer back to their own run's invoices; every new invoice number is above the first run's.
    expect(secondKeys.filter((k) => !k.startsWith('C') && firstKeys.has(k))).toEqual([]);
    expect(Math.min(...secondKeys.filter((k) => /^\d/.test(k)).map(Number))).toBe(highest + 1);
  });
});
