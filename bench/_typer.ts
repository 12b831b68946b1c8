import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { CsvTyper } from '#batch/csv-typer';
import { PgBinaryEncoder } from '#batch/encoders';
import { checkHeader, readCsvHead } from '#batch/source-stream';
import { LineTyper } from '#batch/typer';
import type { ColumnMap } from '#core/source-row';

for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  const head = await readCsvHead(
    createReadStream('/work/shared/data/online-retail/online-retail.csv.gz').pipe(createGunzip()),
  );
  const check = checkHeader(head.columns);
  const columns = Object.fromEntries(
    Object.entries(check.columnOf!).map(([k, v]) => [k, v - 1]),
  ) as ColumnMap;
  const lines = new LineTyper({
    loadId: 'x',
    objectKey: 'landing/x.csv',
    encoder: new PgBinaryEncoder('bulk'),
  });
  const typer = head.body.pipe(new CsvTyper(lines, columns, head.encoding === 'UTF8' ? 'utf8' : 'latin1'));
  let bytes = 0;
  for await (const c of typer) bytes += c.length;
  console.log(
    JSON.stringify({
      ms: Math.round(performance.now() - t0),
      bytes,
      read: lines.rowsRead,
      loaded: lines.rowsLoaded,
      rejected: lines.rejects.count,
      reopened: lines.reopened.size,
      rss: Math.round(process.memoryUsage().rss / 2 ** 20),
    }),
  );
}
