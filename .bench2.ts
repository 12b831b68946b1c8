import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg'; import { from as copyFrom } from 'pg-copy-streams';
import { startPostgres } from '#local/postgres';
import { createLogger } from '#adapters/logger';
import { decompressed, readCsvHead, RecordGuard } from '#batch/source-stream';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b2-'));
const pgr = await startPostgres({ dataDir: path.join(dir, 'pg'), host: '127.0.0.1', port: 0, user: 'u', password: 'p', database: 'd', logger: createLogger('warn') });
const c = new pg.Client({ connectionString: pgr.connectionString }); await c.connect();
const f = '../shared/data/online-retail/online-retail.csv.gz';
const cols = 'c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text';
for (const [name, ddl, guard] of [
  ['unlogged plain', `create unlogged table t (${cols})`, false],
  ['unlogged prefix guard', `create unlogged table t (row_no text, ${cols})`, true],
  ['unlogged plain', `create unlogged table t (${cols})`, false],
  ['unlogged prefix guard', `create unlogged table t (row_no text, ${cols})`, true],
] as const) {
  await c.query('drop table if exists t'); await c.query(ddl);
  const t = performance.now();
  const h = await readCsvHead(await decompressed(fs.createReadStream(f)));
  const s = c.query(copyFrom('COPY t ' + (guard ? '(row_no,c1,c2,c3,c4,c5,c6,c7,c8)' : '(c1,c2,c3,c4,c5,c6,c7,c8)') + ' FROM STDIN WITH (FORMAT csv)'));
  if (guard) await pipeline(h.body, new RecordGuard(8), s); else await pipeline(h.body, s);
  console.log(name, Math.round(performance.now() - t), s.rowCount);
}
await c.end(); await pgr.stop();
