import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextEncodingError } from '#core/text-encoding';
import { type ReplayedLine, replayLines } from '#producer/replay';
import { CSV_HEADER, csvRow } from '#test/helpers/lines';

/**
 * Issue 13, defect 1: the Kaggle copy of Online Retail is Latin-1 with CRLF and its first `£` comes
 * about 3 MB in, far past any sample, so a sniff of the head read it as UTF-8 and turned `£` into U+FFFD.
 */

const VOUCHER = 'Dotcomgiftshop Gift Voucher £40.00';
const FILLER_ROWS = 45_000;

async function collect(file: string, opts: Parameters<typeof replayLines>[1] = {}) {
  const out: ReplayedLine[] = [];
  for await (const l of replayLines(file, opts)) out.push(l);
  return out;
}

/** Plain ASCII rows of the real file's shape, one invoice per 20 rows, then the voucher row. */
function latin1CrlfFile(): { bytes: Buffer; poundAt: number } {
  const rows = [CSV_HEADER];
  for (let i = 0; i < FILLER_ROWS; i++) {
    rows.push(
      csvRow({ InvoiceNo: 536365 + Math.floor(i / 20), StockCode: `2${String(i % 20).padStart(4, '0')}` }),
    );
  }
  rows.push(
    csvRow({
      InvoiceNo: '539492',
      StockCode: 'gift_0001_40',
      Description: VOUCHER,
      Quantity: 1,
      InvoiceDate: '12/20/2010 10:14',
      UnitPrice: '34.04',
      CustomerID: '',
    }),
  );
  const bytes = Buffer.from(`${rows.join('\r\n')}\r\n`, 'latin1');
  return { bytes, poundAt: bytes.indexOf(0xa3) };
}

describe('replay of a Latin-1 CRLF file whose first £ is more than 3 MB in', () => {
  let dir = '';
  let plain = '';
  let gz = '';
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'replay-latin1-'));
    const { bytes, poundAt } = latin1CrlfFile();
    expect(poundAt).toBeGreaterThan(3_000_000);
    expect(bytes.indexOf(0xa3, poundAt + 1)).toBe(-1);
    plain = path.join(dir, 'online-retail-latin1.csv');
    gz = path.join(dir, 'online-retail-latin1.csv.gz');
    await fs.writeFile(plain, bytes);
    await fs.writeFile(gz, gzipSync(bytes));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['plain', () => plain],
    ['gzipped', () => gz],
  ])('%s: the voucher arrives with its £, no replacement character anywhere', async (_, file) => {
    const encodings: string[] = [];
    const lines = await collect(file(), { strict: true, onFile: (e) => encodings.push(e.encoding) });
    expect(encodings).toEqual(['latin1']);
    expect(lines).toHaveLength(FILLER_ROWS + 1);
    expect(lines.at(-1)?.line).toMatchObject({ invoiceNo: '539492', lineNo: 1, description: VOUCHER });
    expect(lines.filter((l) => l.line.description?.includes('\uFFFD'))).toEqual([]);
    expect(lines.filter((l) => l.line.country !== 'United Kingdom')).toEqual([]);
  });

  it('--encoding utf8 on it stops at the line of the £ with the file and the hint', async () => {
    const error = await collect(plain, { encoding: 'utf8' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TextEncodingError);
    expect(error).toMatchObject({ file: plain, line: FILLER_ROWS + 2 });
    expect((error as Error).message).toContain(`${plain}:${FILLER_ROWS + 2}`);
    expect((error as Error).message).toContain('--encoding latin1');
  });
});

describe('replay of a file that is not valid UTF-8 where UTF-8 is expected', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'replay-utf8-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, parts: Buffer[]) => {
    const file = path.join(dir, name);
    await fs.writeFile(file, Buffer.concat(parts));
    return file;
  };

  it('declared UTF-8 with an invalid byte at line 5: stops there with file, line 5 and the hint', async () => {
    const file = await write('declared.csv', [
      Buffer.from(
        `${CSV_HEADER}\n${csvRow()}\n${csvRow({ StockCode: '22752' })}\n${csvRow({ StockCode: '71053' })}\n`,
      ),
      Buffer.from(
        csvRow({ StockCode: '84029G', Description: 'KNITTED UNION FLAG HOT WATER BOTTLE \xff' }),
        'latin1',
      ),
      Buffer.from(`\n${csvRow({ StockCode: '84029E' })}\n`),
    ]);
    const seen: ReplayedLine[] = [];
    const error = await (async () => {
      for await (const l of replayLines(file, { encoding: 'utf8' })) seen.push(l);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TextEncodingError);
    expect(error).toMatchObject({ name: 'TextEncodingError', file, line: 5 });
    expect((error as Error).message).toMatch(/declared\.csv:5: .*not valid UTF-8.*--encoding latin1/);
    // Nothing at or past the bad line was handed on.
    expect(seen.every((l) => !l.line.description?.includes('\uFFFD'))).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(3);
  });

  it('valid UTF-8 early and an invalid byte later (a mixed file): stops at the bad line, not mojibake', async () => {
    const file = await write('mixed.csv', [
      Buffer.from(`${CSV_HEADER}\r\n${csvRow({ Description: 'CAFÉ CREAM CUPID HEARTS COAT HANGER' })}\r\n`),
      Buffer.from(`${csvRow({ StockCode: '22752' })}\r\n`),
      Buffer.from(`${csvRow({ StockCode: 'gift_0001_40', Description: VOUCHER })}\r\n`, 'latin1'),
    ]);
    const error = await collect(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TextEncodingError);
    expect(error).toMatchObject({ file, line: 4 });
    expect((error as Error).message).toContain('--encoding latin1');
  });

  it('a UTF-8 file is read as UTF-8 whatever comes late in it', async () => {
    const file = await write('late.csv', [
      Buffer.from(`${CSV_HEADER}\n`),
      Buffer.from(`${Array.from({ length: 2_000 }, () => csvRow()).join('\n')}\n`),
      Buffer.from(`${csvRow({ InvoiceNo: '539492', Description: VOUCHER })}\n`),
    ]);
    const encodings: string[] = [];
    const lines = await collect(file, { onFile: (e) => encodings.push(e.encoding) });
    expect(encodings).toEqual(['utf8']);
    expect(lines.at(-1)?.line.description).toBe(VOUCHER);
  });
});
