import fs from 'node:fs';
import path from 'node:path';
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
});
