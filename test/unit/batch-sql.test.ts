import { describe, expect, it } from 'vitest';
import { claimStep, loadedStep } from '#batch/loader/manifest';
import { readMigrations, splitStatements } from '#batch/migrate';
import {
  BULK_AFTER,
  bulkBefore,
  countNewRowsSql,
  createCountsSql,
  createTypedSql,
  dimensionSteps,
  duplicateFixStep,
  type LoadPlan,
  markNewSql,
  mergeFactSteps,
} from '#batch/sql';

const csvPlan: LoadPlan = {
  loadId: '0123456789abcdef',
  objectKey: 'landing/a.csv',
  source: 'file',
  format: 'csv',
};
const ndjsonPlan: LoadPlan = {
  loadId: 'fedcba9876543210',
  objectKey: 'archive/x.gz',
  source: 'stream',
  format: 'ndjson',
};

/** Every statement the merge path (the one Redshift runs) sends. */
const mergePath = (plan: LoadPlan, dialect: 'postgres' | 'redshift') =>
  [
    claimStep(dialect, plan.objectKey, 'etag').sql,
    createTypedSql(),
    markNewSql(),
    createCountsSql(),
    countNewRowsSql(),
    ...dimensionSteps().map((s) => s.sql),
    ...mergeFactSteps(dialect, plan).map((s) => s.sql),
    duplicateFixStep().sql,
    loadedStep(dialect, plan.objectKey, 'etag', {
      rowsRead: 3,
      rowsLoaded: 2,
      rowsRejected: 1,
      encoding: 'UTF8',
      header: null,
      extraColumns: null,
    }).sql,
  ].join('\n');

describe('load SQL', () => {
  it('keeps the merge path to SQL Redshift accepts: no ON CONFLICT, arrays, SERIAL or PostgreSQL functions', () => {
    for (const plan of [csvPlan, ndjsonPlan]) {
      const sql = mergePath(plan, 'redshift');
      expect(sql).not.toMatch(
        /ON CONFLICT|ARRAY\[|SERIAL|UNLOGGED|statement_timestamp|CURRENT_TIMESTAMP|::/i,
      );
      // Redshift's MERGE reads a table, never a subquery.
      expect(sql).not.toMatch(/MERGE INTO \w+ USING \(/);
      expect(sql).toMatch(/MERGE INTO dim_product/);
      expect(sql).toMatch(/GETDATE\(\)/);
    }
    expect(mergePath(ndjsonPlan, 'postgres')).toMatch(/statement_timestamp\(\)/);
  });

  it('claims only an object not loaded yet, and rolls back when another loader has it', () => {
    expect(claimStep('postgres', 'landing/a.csv', 'e')).toMatchObject({
      requireRows: true,
      params: ['landing/a.csv', 'e'],
    });
    expect(claimStep('postgres', 'landing/a.csv', 'e').sql).toMatch(
      /status IN \('pending', 'failed', 'staged'\)/,
    );
    expect(claimStep('redshift', 'landing/a.csv', 'e').sql).toMatch(/started_at = GETDATE\(\)/);
  });

  it('lends archive lineage to keys already loaded, and only for the archive', () => {
    expect(
      mergeFactSteps('postgres', ndjsonPlan)
        .map((s) => s.sql)
        .join('\n'),
    ).toMatch(/UPDATE fact_sales_line f SET produced_at = COALESCE/);
    expect(mergeFactSteps('postgres', csvPlan)).toHaveLength(1);
    expect(mergeFactSteps('redshift', csvPlan)[0]).toMatchObject({ params: ['file', 'landing/a.csv'] });
  });

  it("marks a load's keys already in the fact, or deletes their rows when nothing needs them", () => {
    expect(markNewSql()).toMatch(/^UPDATE load_typed SET is_new = false FROM fact_sales_line f\nWHERE /);
    expect(markNewSql(true)).toBe(
      'DELETE FROM load_typed USING fact_sales_line f WHERE f.invoice_no = load_typed.invoice_no AND f.line_no = load_typed.line_no',
    );
  });

  it('inlines the object key and the visible time into the bulk path defaults as quoted literals', () => {
    const sql = bulkBefore('file', "landing/o'brien.csv", Date.parse('2024-05-01T12:00:00.123Z')).join('\n');
    expect(sql).toContain("ALTER COLUMN source_key SET DEFAULT 'landing/o''brien.csv'");
    expect(sql).toContain("ALTER COLUMN warehouse_visible_at SET DEFAULT '2024-05-01T12:00:00.123Z'");
    expect(sql).not.toMatch(/statement_timestamp/);
    expect(sql).toMatch(/^TRUNCATE fact_sales_line/);
    expect(BULK_AFTER.join('\n')).toMatch(
      /DROP DEFAULT[\s\S]*ADD CONSTRAINT fact_sales_line_pkey PRIMARY KEY \(invoice_no, line_no\)/,
    );
  });

  it('names a short list of invoices for the duplicate fix as values, a long one through load_counts', () => {
    const short = duplicateFixStep(['536365', 'C536379']);
    expect(short.params).toEqual(['536365', 'C536379']);
    expect(short.sql).toContain('invoice_no IN (CAST($1 AS varchar(16)), CAST($2 AS varchar(16)))');
    const long = duplicateFixStep(Array.from({ length: 1001 }, (_, i) => String(i)));
    expect(long.params).toBeUndefined();
    expect(long.sql).toContain("SELECT member FROM load_counts WHERE kind = 'invoice'");
  });

  it('counts new rows from the typed table, or takes the count it is given', () => {
    const base = {
      rowsRead: 3,
      rowsLoaded: 2,
      rowsRejected: 1,
      encoding: 'UTF8',
      header: null,
      extraColumns: null,
    };
    expect(loadedStep('postgres', 'k', 'e', base).sql).toMatch(
      /rows_new = \(SELECT count\(\*\) FROM load_typed WHERE is_new\)/,
    );
    const given = loadedStep('postgres', 'k', 'e', { ...base, rowsNew: 2 });
    expect(given.sql).toMatch(/rows_new = CAST\(\$9 AS bigint\)/);
    expect(given.params).toEqual(['k', 'e', 3, 2, 1, 'UTF8', null, null, 2]);
  });
});

describe('migrations', () => {
  it('splits statements at line-ending semicolons and drops comments', () => {
    expect(
      splitStatements('-- head; x\nCREATE TABLE a (x int); -- one\nINSERT INTO a VALUES (1);\n'),
    ).toEqual(['CREATE TABLE a (x int)', 'INSERT INTO a VALUES (1)']);
  });

  it('reads versioned files in order, none using SQL Redshift rejects', async () => {
    const migrations = await readMigrations('redshift');
    expect(migrations[0]).toMatchObject({ version: 1, name: 'star_schema' });
    const versions = migrations.map((m) => m.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    const own = migrations.filter((m) => m.version < 100).flatMap((m) => m.statements);
    expect(own.join('\n')).not.toMatch(/ON CONFLICT|SERIAL|generate_series|ARRAY\[/i);
  });
});
