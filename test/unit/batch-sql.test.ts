import { describe, expect, it } from 'vitest';
import { readMigrations, splitStatements } from '#batch/migrate';
import {
  CSV_FIELDS,
  createStagingSql,
  type LoadPlan,
  mergeSteps,
  stagingColumns,
  typeRowsSql,
} from '#batch/sql';

const csvPlan: LoadPlan = {
  loadId: '0123456789abcdef',
  objectKey: 'landing/a.csv',
  source: 'file',
  format: 'csv',
  columnOf: Object.fromEntries(CSV_FIELDS.map((f, i) => [f, 8 - i])) as LoadPlan['columnOf'],
  columnCount: 9,
};
const ndjsonPlan: LoadPlan = {
  loadId: 'fedcba9876543210',
  objectKey: 'archive/x.gz',
  source: 'stream',
  format: 'ndjson',
};

const allSql = (plan: LoadPlan, dialect: 'postgres' | 'redshift') =>
  [...createStagingSql(dialect, plan), ...mergeSteps(dialect, plan, 'etag').map((s) => s.sql)].join('\n');

describe('load SQL', () => {
  it('keeps to SQL Redshift accepts: no ON CONFLICT, arrays, SERIAL, UNLOGGED or IS JSON there', () => {
    for (const plan of [csvPlan, ndjsonPlan]) {
      const sql = allSql(plan, 'redshift');
      expect(sql).not.toMatch(/ON CONFLICT|ARRAY\[|SERIAL|UNLOGGED|IS JSON|OFFSET 0|statement_timestamp/i);
      expect(sql).toMatch(/MERGE INTO fact_sales_line/);
    }
    expect(allSql(ndjsonPlan, 'redshift')).toMatch(/IS_VALID_JSON\(doc\)/);
    expect(allSql(ndjsonPlan, 'postgres')).toMatch(/doc IS JSON OBJECT/);
  });

  it('maps CSV fields to the staging columns the header put them in', () => {
    const sql = typeRowsSql('postgres', csvPlan);
    expect(sql).toContain("NULLIF(trim(c8), '') AS invoice_no");
    expect(sql).toContain("NULLIF(trim(c1), '') AS country");
    expect(stagingColumns(csvPlan)).toEqual(['row_no', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9']);
  });

  it('numbers CSV lines within their invoice among valid rows; the archive keeps the producer lineNo', () => {
    expect(typeRowsSql('postgres', csvPlan)).toMatch(
      /row_number\(\) OVER \(PARTITION BY c\.reason IS NULL, c\.invoice_no ORDER BY c\.row_no\)/,
    );
    expect(typeRowsSql('postgres', ndjsonPlan)).toMatch(
      /json_extract_path_text\(CAST\(doc AS json\), 'lineNo'\)/,
    );
  });

  it('claims the staged manifest row first and marks it loaded last, in one transaction', () => {
    const steps = mergeSteps('postgres', csvPlan, 'etag');
    expect(steps[0]).toMatchObject({ requireRows: true, params: ['landing/a.csv', 'etag'] });
    expect(steps[0]?.sql).toMatch(/status = 'staged'/);
    const loaded = steps.findIndex((s) => /SET status = 'loaded'/.test(s.sql));
    const facts = steps.findIndex((s) => /INSERT INTO fact_sales_line/.test(s.sql));
    const product = steps.findIndex((s) => /MERGE INTO dim_product/.test(s.sql));
    expect(product).toBeLessThan(facts);
    expect(facts).toBeLessThan(loaded);
    expect(steps.at(-2)?.sql).toBe('DROP TABLE stg_load_0123456789abcdef');
  });

  it('recomputes duplicate rows across objects only for the archive', () => {
    const has = (plan: LoadPlan) =>
      mergeSteps('postgres', plan, 'e').some((s) => /SET is_duplicate_row/.test(s.sql));
    expect(has(ndjsonPlan)).toBe(true);
    expect(has(csvPlan)).toBe(false);
  });

  it('numbers CSV staging rows itself but gives the archive an identity per dialect', () => {
    expect(createStagingSql('postgres', csvPlan)[1]).toMatch(
      /^CREATE UNLOGGED TABLE stg_load_0123456789abcdef \(row_no bigint, c1 text/,
    );
    expect(createStagingSql('redshift', ndjsonPlan)[1]).toMatch(
      /row_no bigint IDENTITY\(1, 1\), doc varchar\(65535\)/,
    );
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
