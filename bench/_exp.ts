import fs from 'node:fs/promises';
import { createReadStream, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { createWriteStream } from 'node:fs';
import { createLogger } from '#adapters/logger';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { migrate } from '#batch/migrate';
import { startPostgres, wipePostgres } from '#local/postgres';
const REAL = '/work/shared/data/online-retail/online-retail.csv.gz';
const logger = createLogger('silent');
const dir = await fs.mkdtemp(path.join('/var/tmp', 'exp-'));
await fs.chmod(dir, 0o755);
const postgres = await startPostgres({ dataDir: path.join(dir, 'pg'), host: '127.0.0.1', port: 0, user: 'b', password: 'b', database: 'b', logger });
const wh = createPostgresWarehouse({ connectionString: postgres.connectionString, logger });
await migrate(wh, logger);
const c = new pg.Client({ connectionString: postgres.connectionString }); await c.connect();
const time = async (label: string, fn: () => Promise<unknown>) => { const t = performance.now(); await fn(); console.log(label, Math.round(performance.now() - t)); };
const floor = async () => { await c.query('DROP TABLE IF EXISTS fl'); await c.query('CREATE UNLOGGED TABLE fl (c1 text,c2 text,c3 text,c4 text,c5 text,c6 text,c7 text,c8 text)');
  await pipeline(createReadStream(REAL), createGunzip(), c.query(copyFrom('COPY fl FROM STDIN WITH (FORMAT csv, HEADER true)'))); };
await time('floor', floor);
await time('floor', floor);
// synthesize typed rows from fl
await c.query(`CREATE TABLE typed AS SELECT coalesce(c1,'X') invoice_no, (row_number() over ())::int line_no, 20101201 date_key, now()::timestamp invoice_date, coalesce(c2,'x') stock_code, c3 description, nullif(split_part(c7,'.',1),'') customer_id, c8 country_name, c4::int quantity, c6::numeric(12,3) unit_price, (c4::int*c6::numeric)::numeric(18,3) line_total, false is_cancellation, false is_adjustment, false is_non_product, false is_duplicate_row, null::timestamptz produced_at, null::timestamptz accepted_at, null::timestamptz stream_visible_at, now() warehouse_visible_at, 'file'::text source, 'landing/online-retail.csv.gz'::text source_key FROM fl`);
const file = path.join(dir, 'typed.csv');
await pipeline(c.query(copyTo('COPY typed TO STDOUT WITH (FORMAT csv)')), createWriteStream(file));
console.log('typed bytes', (await fs.stat(file)).size);
const cols = 'invoice_no, line_no, date_key, invoice_date, stock_code, description, customer_id, country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment, is_non_product, is_duplicate_row, produced_at, accepted_at, stream_visible_at, warehouse_visible_at, source, source_key';
const bfile = path.join(dir, 'typed.bin');
await pipeline(c.query(copyTo('COPY typed TO STDOUT WITH (FORMAT binary)')), createWriteStream(bfile));
console.log('binary bytes', (await fs.stat(bfile)).size);
await c.query(`CREATE TABLE typed2 AS SELECT invoice_no, line_no, date_key, invoice_date, stock_code, description, customer_id, country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment, is_non_product, is_duplicate_row FROM typed`);
const b2 = path.join(dir, 'typed2.bin');
await pipeline(c.query(copyTo('COPY typed2 TO STDOUT WITH (FORMAT binary)')), createWriteStream(b2));
console.log('binary2 bytes', (await fs.stat(b2)).size);
const c15 = 'invoice_no, line_no, date_key, invoice_date, stock_code, description, customer_id, country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment, is_non_product, is_duplicate_row';
await c.query(`ALTER TABLE fact_sales_line ALTER COLUMN source SET DEFAULT 'file', ALTER COLUMN source_key SET DEFAULT 'landing/online-retail.csv.gz', ALTER COLUMN warehouse_visible_at SET DEFAULT statement_timestamp()`);
await c.query('CREATE TABLE lg_noidx (LIKE fact_sales_line INCLUDING DEFAULTS)');
await c.query('CREATE UNLOGGED TABLE ul_pk (LIKE fact_sales_line INCLUDING DEFAULTS INCLUDING INDEXES)');
await c.query('CREATE TABLE lg_pkonly (LIKE fact_sales_line INCLUDING DEFAULTS)'); await c.query('ALTER TABLE lg_pkonly ADD PRIMARY KEY (invoice_no, line_no)');
const cp = (t: string) => pipeline(createReadStream(b2), c.query(copyFrom(`COPY ${t} (${c15}) FROM STDIN WITH (FORMAT binary)`)));

const variants: Record<string,string> = {
  all15: c15,
  textonly: 'invoice_no, stock_code, description, customer_id, country_name',
  ints: 'line_no, date_key, quantity',
  nums: 'unit_price, line_total',
  ts: 'invoice_date',
  bools: 'is_cancellation, is_adjustment, is_non_product, is_duplicate_row',
};
for (const [name, cols] of Object.entries(variants)) {
  await c.query(`DROP TABLE IF EXISTS v_${name}`);
  await c.query(`CREATE UNLOGGED TABLE v_${name} AS SELECT ${cols} FROM typed2 LIMIT 0`);
  for (const fmt of ['binary', 'text']) {
    const f = path.join(dir, `${name}.${fmt}`);
    await pipeline(c.query(copyTo(`COPY (SELECT ${cols} FROM typed2) TO STDOUT WITH (FORMAT ${fmt})`)), createWriteStream(f));
    const size = (await fs.stat(f)).size;
    const ms: number[] = [];
    for (let i = 0; i < 3; i++) { await c.query(`TRUNCATE v_${name}`); const t = performance.now(); await pipeline(createReadStream(f), c.query(copyFrom(`COPY v_${name} FROM STDIN WITH (FORMAT ${fmt})`))); ms.push(Math.round(performance.now() - t)); }
    console.log(name, fmt, Math.round(size/1e6)+'MB', ms.join(' '));
  }
}
await time('floor', floor);
await time('floor', floor);
for (let i = 0; i < 0; i++) {
await c.query('TRUNCATE fact_sales_line');
await time('copy fact (indexes)', () => pipeline(createReadStream(file), c.query(copyFrom(`COPY fact_sales_line (${cols}) FROM STDIN WITH (FORMAT csv)`))));
await c.query('DROP TABLE IF EXISTS st'); await c.query('CREATE UNLOGGED TABLE st (LIKE fact_sales_line)');
await time('copy unlogged typed staging', () => pipeline(createReadStream(file), c.query(copyFrom(`COPY st (${cols}) FROM STDIN WITH (FORMAT csv)`))));
await c.query('TRUNCATE fact_sales_line');
await time('insert select into fact', () => c.query(`INSERT INTO fact_sales_line SELECT * FROM st`));
}
const idx = await c.query(`select indexname, indexdef from pg_indexes where tablename='fact_sales_line'`); console.log(idx.rows.map(r=>r.indexdef));
await c.end(); await wh.close(); await postgres.stop(); await wipePostgres(path.join(dir,'pg')); await fs.rm(dir,{recursive:true,force:true});
