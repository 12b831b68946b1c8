import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { invoiceLineInput } from '#core/invoice-line';
import { TextEncodingError } from '#core/text-encoding';
import {
  londonLocalToDate,
  type MalformedRow,
  MalformedRowError,
  type ReplayedLine,
  ReplayInputError,
  replayLines,
  type SourceEncoding,
} from '#producer/replay';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/producer');
const fx = (name: string) => path.join(fixtures, name);

async function collect(paths: string | string[], opts: Parameters<typeof replayLines>[1] = {}) {
  const out: ReplayedLine[] = [];
  for await (const l of replayLines(paths, opts)) out.push(l);
  return out;
}

const PLAIN_KEYS = [
  ['536365', 1],
  ['536365', 2],
  ['536366', 1],
  ['536367', 1],
  ['536365', 3],
  ['536368', 1],
  ['C536379', 1],
  ['536370', 1],
];

describe('replayLines input variants', () => {
  it.each([
    ['plain.csv', 'utf8'],
    ['crlf.csv', 'utf8'],
    ['plain.csv.gz', 'utf8'],
    ['latin1.csv', 'latin1'],
  ])('%s: same lines, lineNo per invoice in source order, encoding %s detected', async (file, encoding) => {
    const seen: SourceEncoding[] = [];
    const lines = await collect(fx(file), { onFile: (e) => seen.push(e.encoding) });
    expect(seen).toEqual([encoding]);
    expect(lines.map((l) => [l.line.invoiceNo, l.line.lineNo])).toEqual(PLAIN_KEYS);
    expect(lines[4]?.line.description).toBe('CAFÉ CREAM CUPID HEARTS COAT HANGER');
    expect(lines[2]?.line.description).toBe('HAND WARMER UNION JACK, RED');
    expect(lines[3]?.line.description).toBe('RECORD FRAME 7" SINGLE SIZE');
    expect(lines[5]?.line).toMatchObject({
      description: null,
      customerId: null,
      unitPrice: '0',
      quantity: -5,
    });
    expect(lines[7]?.line.unitPrice).toBe('0.001');
    expect(lines.every((l) => invoiceLineInput.safeParse(l.line).success)).toBe(true);
    expect(lines.every((l) => !l.line.country.endsWith('\r'))).toBe(true);
  });

  it('--encoding latin1 forces the decoding; forcing utf8 on a Latin-1 file stops at the first É', async () => {
    const forced = await collect(fx('latin1.csv'), { encoding: 'latin1' });
    expect(forced[4]?.line.description).toContain('CAFÉ');
    const wrong = await collect(fx('latin1.csv'), { encoding: 'utf8' }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(TextEncodingError);
    expect(wrong).toMatchObject({ file: fx('latin1.csv'), line: 6 });
  });

  it('ISO dates with and without seconds and CustomerID 17850.0', async () => {
    const lines = await collect(fx('iso-dates.csv'));
    expect(lines.map((l) => [l.line.invoiceDate, l.line.customerId])).toEqual([
      ['2010-12-01T08:26:00', '17850'],
      ['2010-12-01T08:26:00', '17850'],
      ['2010-12-01T08:28:30', null],
    ]);
  });

  it('a directory replays its CSV files (plain and gz) merged in time order, ignoring other files', async () => {
    const lines = await collect(fx('dir'));
    expect(lines.map((l) => `${l.line.invoiceNo}#${l.line.lineNo}`)).toEqual([
      '536360#1',
      '536365#1',
      '536370#1',
      '536365#2',
      '536380#1',
      '536390#1',
      '536400#1',
    ]);
  });

  it('a glob works like the list of its files', async () => {
    const viaGlob = await collect(path.join(fixtures, 'dir', '*.csv*'));
    const viaDir = await collect(fx('dir'));
    expect(viaGlob.map((l) => l.line)).toEqual(viaDir.map((l) => l.line));
  });

  it('sourceTime resolves London local time (GMT in winter, BST in summer)', () => {
    expect(londonLocalToDate('2010-12-01T08:26:00').toISOString()).toBe('2010-12-01T08:26:00.000Z');
    expect(londonLocalToDate('2011-07-01T08:26:00').toISOString()).toBe('2011-07-01T07:26:00.000Z');
  });

  it('a missing path or a header without the required columns is an input error', async () => {
    await expect(collect(fx('nope.csv'))).rejects.toBeInstanceOf(ReplayInputError);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'replay-'));
    try {
      await fs.writeFile(path.join(dir, 'x.csv'), 'a,b,c\n1,2,3\n');
      await expect(collect(path.join(dir, 'x.csv'))).rejects.toThrow(/lacks column\(s\) InvoiceNo/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('stopping early closes the file (break out of the loop)', async () => {
    let n = 0;
    for await (const _ of replayLines(fx('plain.csv.gz'))) if (++n === 2) break;
    expect(n).toBe(2);
  });
});

describe('replayLines malformed rows', () => {
  it('reports each with file, line number and reason, and goes on', async () => {
    const bad: MalformedRow[] = [];
    const lines = await collect(fx('malformed.csv'), { onMalformed: (e) => bad.push(e) });
    expect(lines.map((l) => `${l.line.invoiceNo}#${l.line.lineNo}`)).toEqual(['536365#1', '536368#1']);
    expect(bad.map((b) => [path.basename(b.file), b.line])).toEqual([
      ['malformed.csv', 3],
      ['malformed.csv', 4],
      ['malformed.csv', 5],
      ['malformed.csv', 6],
      ['malformed.csv', 7],
      ['malformed.csv', 8],
      ['malformed.csv', 9],
    ]);
    expect(bad[0]?.reason).toMatch(/Quantity "six"/);
    expect(bad[1]?.reason).toMatch(/InvoiceDate/);
    expect(bad[2]?.reason).toMatch(/UnitPrice/);
    expect(bad[3]?.reason).toMatch(/expected 8 fields, got 5/);
    expect(bad[4]?.reason).toMatch(/quote/i);
    expect(bad[5]?.reason).toMatch(/InvoiceNo/);
    expect(bad[6]?.reason).toMatch(/CustomerID/);
  });

  it('--strict makes the first malformed row fatal', async () => {
    const bad: MalformedRow[] = [];
    const error = await collect(fx('malformed.csv'), { strict: true, onMalformed: (e) => bad.push(e) }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(MalformedRowError);
    expect(error.message).toMatch(/malformed\.csv:3: Quantity/);
    expect(bad).toHaveLength(1);
  });
});
