import S3rver from 's3rver';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import fs from 'node:fs/promises'; import os from 'node:os'; import path from 'node:path';
import { createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { startPostgres } from '#local/postgres';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { migrate } from '#batch/migrate';
import { createLoader, loadIdOf } from '#batch/loader';
import { typeRowsSql, TYPED_TABLE } from '#batch/sql';
import { checkHeader } from '#batch/source-stream';
const logger = createLogger('warn');
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'trial-'));
await fs.mkdir(path.join(dir, 's3'));
const s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: 'b' }] } as any);
const addr = await s3rver.run();
const pgr = await startPostgres({ dataDir: path.join(dir, 'pg'), host: '127.0.0.1', port: 0, user: 'u', password: 'p', database: 'd', logger });
const wh = createPostgresWarehouse({ connectionString: pgr.connectionString, max: 1 });
await migrate(wh, logger);
const clients = createClients({ region: 'us-east-1', endpoints: { s3: `http://127.0.0.1:${addr.port}` }, local: true });
const put = await clients.s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'landing/x.csv.gz', Body: await fs.readFile('../shared/data/online-retail/online-retail.csv.gz') }));
const loader = createLoader({ s3: clients.s3, bucket: 'b', warehouse: wh, logger, hooks: { afterStage: async () => { throw new Error('stop'); } } });
await loader.sweep();
const etag = put.ETag!.replaceAll('"', '');
const check = checkHeader(['InvoiceNo','StockCode','Description','Quantity','InvoiceDate','UnitPrice','CustomerID','Country']);
const plan = { loadId: loadIdOf('landing/x.csv.gz', etag), objectKey: 'landing/x.csv.gz', source: 'file' as const, format: 'csv' as const, columnOf: check.columnOf!, columnCount: 8 };
const { sql } = { sql: typeRowsSql('postgres', plan) };
await wh.query(`ANALYZE stg_load_${plan.loadId}`);
await wh.query(`SET work_mem = '256MB'`);
await wh.query(`CREATE TEMP TABLE ${TYPED_TABLE} (row_no bigint, line_number bigint, reason varchar(512), keep boolean, is_new boolean,
  invoice_no varchar(256), line_no integer, date_key integer, invoice_date timestamp, stock_code varchar(256),
  description varchar(1024), customer_id varchar(256), country varchar(256), quantity integer,
  unit_price numeric(12, 3), line_total numeric(18, 3), is_cancellation boolean, is_adjustment boolean,
  is_non_product boolean, is_duplicate_row boolean, produced_at timestamptz, accepted_at timestamptz,
  stream_visible_at timestamptz, quantity_raw varchar(256), invoice_date_raw varchar(256),
  unit_price_raw varchar(256), customer_id_raw varchar(256))`);
const r = await wh.query<{ 'QUERY PLAN': string }>(`EXPLAIN ANALYZE ${sql}`);
console.log(r.rows.map((x) => x['QUERY PLAN']).join('\n'));
await wh.close(); await pgr.stop(); await s3rver.close(); clients.destroy();
