import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { CsvTyper } from '#batch/csv-typer';
import { PgBinaryEncoder } from '#batch/encoders';
import { checkHeader, splitCsvLine } from '#batch/source-stream';
import { LineTyper } from '#batch/typer';
import type { ColumnMap } from '#core/source-row';

const all = gunzipSync(readFileSync('/work/shared/data/online-retail/online-retail.csv.gz'));
const nl = all.indexOf(10);
const header = splitCsvLine(all.subarray(0, nl).toString());
const body = all.subarray(nl + 1);
const columns = Object.fromEntries(
  Object.entries(checkHeader(header).columnOf!).map(([k, v]) => [k, v - 1]),
) as ColumnMap;
const nullEnc = { header: undefined, trailer: undefined, write() {}, take: () => Buffer.alloc(0) };
function run(label: string, mk: () => { lines: LineTyper; typer: CsvTyper }) {
  const ms: number[] = [];
  for (let r = 0; r < 4; r++) {
    const { lines, typer } = mk();
    const t = performance.now();
    for (let o = 0; o < body.length; o += 65536)
      (typer as any).run(body.subarray(o, Math.min(body.length, o + 65536)), false);
    (typer as any).run(null, true);
    ms.push(Math.round(performance.now() - t));
    if (lines.rowsRead !== 541909 && !label.startsWith('A')) console.log('rows', lines.rowsRead);
  }
  console.log(label, ms.join(' '));
}
const mk = (enc: any, patch?: (l: LineTyper, t: CsvTyper) => void) => () => {
  const lines = new LineTyper({ loadId: 'x', objectKey: 'k', encoder: enc() });
  const typer = new CsvTyper(lines, columns, 'utf8');
  (typer as any).push = () => true;
  patch?.(lines, typer);
  return { lines, typer };
};
run(
  'A split only',
  mk(
    () => nullEnc,
    (_l, t) => {
      (t as any).fast = () => true;
    },
  ),
);
run(
  'B fast parse, no csvRow',
  mk(
    () => nullEnc,
    (l) => {
      (l as any).csvRow = () => undefined;
    },
  ),
);
run(
  'C csvRow, null encoder',
  mk(() => nullEnc),
);
run(
  'D full binary',
  mk(() => new PgBinaryEncoder('bulk')),
);
