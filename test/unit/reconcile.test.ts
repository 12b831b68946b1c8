import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  formatMilli,
  type LineSource,
  type LineTotalRow,
  ReconcileInputError,
  readAcceptedLines,
  reconcile,
  toMilli,
} from '#batch/reconcile';
import { formatReconcile, parseSince } from '#cli/commands/reconcile';
import { lineKey } from '#core/invoice-line';

async function runDir(logs: Record<string, string[]>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-rec-'));
  for (const [id, rows] of Object.entries(logs))
    await fs.writeFile(path.join(dir, `${id}.ndjson`), `${rows.join('\n')}\n`);
  return dir;
}
const batch = (at: string, lines: Array<[string, number, string]>) =>
  JSON.stringify({ t: 'batch', at, n: lines.length, lines });
const source = (name: string, rows: LineTotalRow[]): LineSource => ({ name, linesOf: async () => rows });
const l = (invoiceNo: string, lineNo: number, lineTotal: string): LineTotalRow => ({
  invoiceNo,
  lineNo,
  lineTotal,
});

describe('reconcile', () => {
  it("keys accepted lines by core's lineKey, the one key format of a line", async () => {
    const dir = await runDir({ a: [batch('2024-01-01T00:00:00Z', [['C536379', 1, '-27.5']])] });
    const accepted = await readAcceptedLines(dir);
    expect([...accepted.lines.keys()]).toEqual([lineKey({ invoiceNo: 'C536379', lineNo: 1 })]);
  });

  it('money is exact thousandths', () => {
    expect(toMilli('15.3')).toBe(15300n);
    expect(toMilli('-0.001')).toBe(-1n);
    expect(toMilli('2.5500')).toBe(2550n);
    expect(() => toMilli('1.0001')).toThrow(ReconcileInputError);
    expect(() => toMilli('abc')).toThrow(ReconcileInputError);
    expect(formatMilli(toMilli('0.1') + toMilli('0.2'))).toBe('0.300');
  });

  it('agrees when every accepted key is in each store once with its total', async () => {
    const dir = await runDir({
      a: [
        '{"t":"run","runId":"a"}',
        batch('2024-01-01T00:00:00Z', [
          ['1', 1, '1.5'],
          ['1', 2, '0.25'],
        ]),
        '{"t":"summary"}',
      ],
    });
    const rows = [l('1', 1, '1.500'), l('1', 2, '0.250'), l('1', 3, '9')];
    const r = await reconcile({
      runLogDir: dir,
      sources: [source('dynamodb', rows), source('warehouse', rows)],
    });
    expect(r.ok).toBe(true);
    expect(r.accepted).toMatchObject({ lines: 2, invoices: 1, revenue: '1.750' });
    expect(r.stores[0]).toMatchObject({
      lines: 2,
      revenue: '1.750',
      missing: 0,
      duplicated: 0,
      mismatched: 0,
      extra: 1,
    });
  });

  it('reports missing, duplicated and mismatched keys, capped, and a truncated last log line is ignored', async () => {
    const dir = await runDir({
      a: [
        batch('2024-01-01T00:00:00Z', [
          ['1', 1, '1'],
          ['1', 2, '2'],
          ['2', 1, '3'],
          ['2', 2, '4'],
        ]),
        '{"t":"batch","at":"2024-01-0',
      ],
    });
    const wh = [l('1', 1, '1'), l('1', 1, '1'), l('2', 1, '3.001'), l('2', 2, '4')];
    const r = await reconcile({ runLogDir: dir, sources: [source('warehouse', wh)], sampleLimit: 1 });
    expect(r.ok).toBe(false);
    const s = r.stores[0];
    expect(s).toMatchObject({ missing: 1, duplicated: 1, mismatched: 1, lines: 4 });
    expect(s?.samples.missing).toEqual([{ key: '1/2', expected: '2.000' }]);
    expect(s?.samples.duplicated).toEqual([{ key: '1/1', copies: 2 }]);
    expect(s?.samples.mismatched).toEqual([{ key: '2/1', expected: '3.000', actual: '3.001' }]);
  });

  it('counts an absent key the store says is on its way as pending, not missing, and prints it', async () => {
    const dir = await runDir({
      a: [
        batch('2024-01-01T00:00:00Z', [
          ['1', 1, '1'],
          ['1', 2, '2'],
          ['2', 1, '3'],
        ]),
      ],
    });
    const lake: LineSource = {
      name: 'lake',
      // 1/2 is on its way; 2/1 is claimed too but already there (found wins); 1/1 is not claimed.
      pendingKeys: async () =>
        new Set([lineKey({ invoiceNo: '1', lineNo: 2 }), lineKey({ invoiceNo: '2', lineNo: 1 })]),
      linesOf: async () => [l('2', 1, '3')],
    };
    const r = await reconcile({ runLogDir: dir, sources: [lake, source('warehouse', [l('1', 1, '1')])] });
    expect(r.stores[0]).toMatchObject({ lines: 1, missing: 1, pending: 1 });
    expect(r.stores[0]?.samples.missing).toEqual([{ key: '1/1', expected: '1.000' }]);
    // A store that cannot tell has no pending count at all.
    expect(r.stores[1]).not.toHaveProperty('pending');
    const text = formatReconcile(r);
    expect(text).toMatch(/pending/);
    expect(text).toContain('lake: 1 line pending');
  });

  it('scopes by run id and by time; a re-sent key counts once and the later total wins', async () => {
    const dir = await runDir({
      a: [batch('2024-01-01T00:00:00Z', [['1', 1, '1']])],
      b: [
        batch('2024-01-02T00:00:00Z', [
          ['1', 1, '5'],
          ['3', 1, '2'],
        ]),
      ],
    });
    const all = await reconcile({ runLogDir: dir, sources: [source('w', [l('1', 1, '5'), l('3', 1, '2')])] });
    expect(all.ok).toBe(true);
    expect(all.accepted).toMatchObject({ lines: 2, reaccepted: 1, conflicting: 1 });
    const onlyA = await reconcile({
      runLogDir: dir,
      scope: { runIds: ['a'] },
      sources: [source('w', [l('1', 1, '1')])],
    });
    expect(onlyA.accepted.lines).toBe(1);
    const since = await reconcile({
      runLogDir: dir,
      scope: { since: new Date('2024-01-01T12:00:00Z') },
      sources: [],
    });
    expect(since.scope.runs).toEqual(['b']);
    await expect(reconcile({ runLogDir: dir, scope: { runIds: ['zz'] }, sources: [] })).rejects.toThrow(
      /no run log for zz/,
    );
  });

  it('--since takes ISO times and durations', () => {
    const now = Date.parse('2024-05-06T12:00:00Z');
    expect(parseSince('15m', now).toISOString()).toBe('2024-05-06T11:45:00.000Z');
    expect(parseSince('2024-05-06T07:00:00Z', now).toISOString()).toBe('2024-05-06T07:00:00.000Z');
    expect(() => parseSince('soon', now)).toThrow(ReconcileInputError);
  });
});
