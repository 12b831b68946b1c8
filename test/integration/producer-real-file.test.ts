import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { invoiceLineInput } from '#core/invoice-line';
import { type MalformedRow, replayBatches } from '#producer/replay';

const REAL_FILE = path.resolve(
  import.meta.dirname,
  '../../../shared/data/online-retail/online-retail.csv.gz',
);
const present = fs.existsSync(REAL_FILE);
if (!present) console.warn(`skipping the real-file replay test: ${REAL_FILE} is absent`);

describe.skipIf(!present)('replay of the real Online Retail file', () => {
  it('parses all 541,909 lines with no error, unique keys, every line valid for the API', async () => {
    const malformed: MalformedRow[] = [];
    const keys = new Set<string>();
    let lines = 0;
    let invalid = 0;
    let cancellations = 0;
    let guests = 0;
    let last = '';
    for await (const batch of replayBatches(REAL_FILE, {
      strict: true,
      onMalformed: (e) => malformed.push(e),
    })) {
      for (const { line } of batch) {
        lines++;
        keys.add(`${line.invoiceNo}#${line.lineNo}`);
        if (!invoiceLineInput.safeParse(line).success) invalid++;
        if (line.invoiceNo.startsWith('C')) cancellations++;
        if (line.customerId === null) guests++;
        last = line.invoiceDate;
      }
    }
    expect(malformed).toEqual([]);
    expect(lines).toBe(541_909);
    expect(keys.size).toBe(541_909);
    expect(invalid).toBe(0);
    // Figures from the data set's README.
    expect(cancellations).toBe(9_288);
    expect(guests).toBe(135_080);
    expect(last).toBe('2011-12-09T12:50:00');
  });

  it('the Kaggle copy (Latin-1, CRLF, first £ 3.2 MB in) replays with every £ exact', async () => {
    // The shared file is UTF-8 with LF; the Kaggle download is the same text in Latin-1 with CRLF.
    const text = zlib.gunzipSync(fs.readFileSync(REAL_FILE)).toString('utf8').replace(/\n/g, '\r\n');
    const latin1 = Buffer.from(text, 'latin1');
    expect(latin1.indexOf(0xa3)).toBeGreaterThan(3_000_000);
    const pounds = [...text.matchAll(/^[^,]*,[^,]*,([^,]*£[^,]*),/gm)].map((m) => m[1]);
    expect(pounds).toHaveLength(32);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaggle-'));
    const file = path.join(dir, 'online-retail-kaggle.csv');
    fs.writeFileSync(file, latin1);
    try {
      const encodings: string[] = [];
      let lines = 0;
      let replaced = 0;
      const found: string[] = [];
      for await (const batch of replayBatches(file, {
        strict: true,
        onFile: (e) => encodings.push(e.encoding),
      })) {
        for (const { line } of batch) {
          lines++;
          if (line.description?.includes('\uFFFD')) replaced++;
          if (line.description?.includes('£')) found.push(line.description);
        }
      }
      expect(encodings).toEqual(['latin1']);
      expect(lines).toBe(541_909);
      expect(replaced).toBe(0);
      expect(found[0]).toBe('Dotcomgiftshop Gift Voucher £40.00');
      expect(found).toEqual(pounds);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
