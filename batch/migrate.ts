import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from '#adapters/logger';
import type { Dialect, Statement, Warehouse } from '#adapters/warehouse';
import { COUNTRIES, UNKNOWN_ISO_CODE, UNKNOWN_REGION } from '#core/countries';
import { BatchError } from './errors.ts';
import { dialectOf } from './sql.ts';

/** Versioned SQL: `NNNN_name.sql` for every warehouse, `NNNN_name.<dialect>.sql` for one. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../analytics/sql/migrations/', import.meta.url));
const FILE = /^(\d{4})_([a-z0-9_]+?)(?:\.(postgres|redshift))?\.sql$/;

export interface Migration {
  version: number;
  name: string;
  file: string;
  statements: string[];
}

export class MigrationError extends BatchError {
  override name = 'MigrationError';
}

/** Splits a migration into statements: `;` at the end of a line ends one; `--` comments go. */
export function splitStatements(sql: string): string[] {
  const withoutComments = sql
    .split('\n')
    .map((line) => line.replace(/--.*$/, ''))
    .join('\n');
  return withoutComments
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function readMigrations(dialect: Dialect, dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).sort();
  const out: Migration[] = [];
  for (const file of files) {
    const m = FILE.exec(file);
    if (!m) continue;
    if (m[3] && m[3] !== dialect) continue;
    const version = Number(m[1]);
    if (out.some((x) => x.version === version))
      throw new MigrationError(`two migrations with version ${m[1]}`);
    out.push({
      version,
      name: m[2] ?? file,
      file,
      statements: splitStatements(await fs.readFile(`${dir}/${file}`, 'utf8')),
    });
  }
  return out;
}

/**
 * One migration's transaction: the lock, the claim (its version row, named for now by this attempt's
 * `token`), a check that the claim is this transaction's, the migration, then the row's real name.
 * PostgreSQL stops at a claim that matched nothing (`requireRows`: another process applied it while
 * this one waited for the lock). A Redshift batch runs on past it and would apply the migration a
 * second time; Redshift enforces no key, so 0002 would put the calendar in dim_date twice. There the
 * check fails instead (a cast of its message to integer), and the batch rolls back whole; migrate()
 * then finds the version applied (as after a serializable-isolation abort) and goes on.
 */
export function migrationSteps(dialect: Dialect, m: Migration, token: string): Statement[] {
  return [
    { sql: 'LOCK TABLE schema_migrations' },
    {
      sql: `INSERT INTO schema_migrations (version, name, applied_at) SELECT $1, $2, ${dialectOf(dialect).now}
WHERE NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
      params: [m.version, token],
      requireRows: true,
    },
    {
      sql: `SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1 AND name = $2) THEN '1' ELSE $3 END AS integer) AS claimed`,
      params: [m.version, token, `migration ${m.version} was applied by another process`],
    },
    ...m.statements.map((sql) => ({ sql })),
    {
      sql: 'UPDATE schema_migrations SET name = $2 WHERE version = $1 AND name = $3',
      params: [m.version, m.name, token],
    },
  ];
}

/**
 * Applies every migration not yet recorded in schema_migrations, each in its own transaction with
 * its version row, so a crash leaves either all or none of a migration. Then syncs dim_country.
 * Safe to run from several processes at once (two loaders' cold starts): migrationSteps.
 */
export async function migrate(warehouse: Warehouse, logger: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  await warehouse.query(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version integer NOT NULL PRIMARY KEY, name varchar(128) NOT NULL, applied_at timestamptz NOT NULL)',
  );
  const applied = async (version: number) =>
    (await warehouse.query('SELECT version FROM schema_migrations WHERE version = $1', [version])).rows
      .length > 0;
  const done = new Set(
    (await warehouse.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) =>
      Number(r.version),
    ),
  );
  const versions: number[] = [];
  for (const m of await readMigrations(warehouse.dialect, dir)) {
    if (done.has(m.version)) continue;
    let committed: boolean;
    try {
      ({ committed } = await warehouse.transaction(
        migrationSteps(warehouse.dialect, m, `claim ${randomUUID()}`),
      ));
    } catch (err) {
      // A Redshift batch whose claim another process took fails its check: that process applied it.
      if (await applied(m.version)) continue;
      throw err;
    }
    if (committed) {
      versions.push(m.version);
      logger.debug({ version: m.version, name: m.name }, 'migration applied');
    }
  }
  // One line for a person; each migration is at debug.
  if (versions.length > 0) logger.info({ versions }, 'migrations applied');
  await syncCountries(warehouse);
  return versions;
}

/** dim_country's known rows come from core/countries.ts: merged so a change there reaches the warehouse. */
export async function syncCountries(warehouse: Warehouse): Promise<void> {
  const params: unknown[] = [];
  const rows = COUNTRIES.map((c) => {
    params.push(c.name, c.isoCode, c.region);
    const n = params.length;
    return `SELECT CAST($${n - 2} AS varchar(64)) AS country_name, CAST($${n - 1} AS char(2)) AS iso_code, CAST($${n} AS varchar(32)) AS region`;
  });
  const names = COUNTRIES.map((c) => c.name);
  await warehouse.transaction([
    // Redshift's MERGE reads a table, not a subquery.
    {
      sql: 'CREATE TEMP TABLE load_country_source (country_name varchar(64), iso_code char(2), region varchar(32))',
    },
    { sql: `INSERT INTO load_country_source ${rows.join(' UNION ALL ')}`, params },
    {
      sql: `MERGE INTO dim_country USING load_country_source s ON dim_country.country_name = s.country_name
WHEN MATCHED THEN UPDATE SET iso_code = s.iso_code, region = s.region, is_known = true
WHEN NOT MATCHED THEN INSERT (country_name, iso_code, region, is_known) VALUES (s.country_name, s.iso_code, s.region, true)`,
    },
    { sql: 'DROP TABLE load_country_source' },
    // Names that left COUNTRIES become unknown rather than keep stale codes.
    {
      sql: `UPDATE dim_country SET iso_code = CAST($1 AS char(2)), region = CAST($2 AS varchar(32)), is_known = false
WHERE is_known AND country_name NOT IN (${names.map((_, i) => `CAST($${i + 3} AS varchar(64))`).join(', ')})`,
      params: [UNKNOWN_ISO_CODE, UNKNOWN_REGION, ...names],
    },
  ]);
}
