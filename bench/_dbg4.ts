import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { checkHeader, readCsvHead } from '#batch/source-stream';
import { CsvTyper, LineTyper } from '#batch/typer';
import type { ColumnMap } from '#core/source-row';

const F = '/work/shared/data/online-retail/online-retail.csv.gz';
for (let r = 0; r < 3; r++) {
  const head = await readCsvHead(createReadStream(F).pipe(createGunzip()));
  const columns = Object.fromEntries(
    Object.entries(checkHeader(head.columns).columnOf!).map(([k, v]) => [k, v - 1]),
  ) as ColumnMap;
  const lines = new LineTyper({
    loadId: 'x',
    objectKey: 'k',
    encoder: { header: undefined, trailer: undefined, write() {}, take: () => Buffer.alloc(0) },
  });
  const t = performance.now();
  const ty = new CsvTyper(lines, columns, 'utf8');
  for await (const _ of head.body.pipe(ty)) {
  }
  console.log(ty.fastRecords, ty.slowRecords, lines.rowsLoaded, lines.rejects.count);
  console.log('no encode', Math.round(performance.now() - t));
}
