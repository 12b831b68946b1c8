import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Power BI data source files (.pbids): JSON that opens Power BI Desktop's "Get data" on the
 * warehouse with the server and database filled in. Credentials are never written: Power BI asks.
 */
export type PowerBiMode = 'DirectQuery' | 'Import';

export interface PbidsConnection {
  /** Power BI's connector name: 'postgresql' or 'amazonredshift'. */
  protocol: 'postgresql' | 'amazonredshift';
  /** host:port */
  server: string;
  database: string;
  mode: PowerBiMode;
}

export function buildPbids(c: PbidsConnection): object {
  return {
    version: '0.1',
    connections: [
      {
        details: { protocol: c.protocol, address: { server: c.server, database: c.database } },
        options: {},
        mode: c.mode,
      },
    ],
  };
}

export class InvalidConnectionStringError extends Error {
  override name = 'InvalidConnectionStringError';
}

/** host:port and database of a libpq URL (`postgresql://user:pw@host:port/db`); no credentials. */
export function postgresTarget(connectionString: string): { server: string; database: string; user: string } {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch (cause) {
    throw new InvalidConnectionStringError('not a postgresql:// connection string', { cause });
  }
  if (!/^postgres(ql)?:$/.test(url.protocol))
    throw new InvalidConnectionStringError('not a postgresql:// URL');
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  return {
    server: `${url.hostname}:${url.port || '5432'}`,
    database,
    user: decodeURIComponent(url.username),
  };
}

export interface RedshiftTarget {
  /** The endpoint host, if known; else built from the workgroup, region and a placeholder account. */
  host?: string | undefined;
  workgroup?: string | undefined;
  region: string;
  database?: string | undefined;
  port?: number;
}

/** Redshift Serverless endpoints are `<workgroup>.<account>.<region>.redshift-serverless.amazonaws.com`. */
export function redshiftServer(t: RedshiftTarget): {
  server: string;
  database: string;
  placeholders: boolean;
} {
  const port = t.port ?? 5439;
  if (t.host) return { server: `${t.host}:${port}`, database: t.database ?? 'dev', placeholders: false };
  const workgroup = t.workgroup ?? '<WORKGROUP>';
  return {
    server: `${workgroup}.<ACCOUNT_ID>.${t.region}.redshift-serverless.amazonaws.com:${port}`,
    database: t.database ?? 'dev',
    placeholders: true,
  };
}

/** The three totesys stars (migration 0211) and the views each one's model loads. */
export type TotesysStar = 'sales' | 'purchases' | 'payments';

export const TOTESYS_POWERBI_VIEWS: Record<TotesysStar, ReadonlyArray<string>> = {
  sales: [
    'Totesys Sales Orders',
    'Totesys Date',
    'Totesys Staff',
    'Totesys Counterparty',
    'Totesys Currency',
    'Totesys Design',
    'Totesys Location',
  ],
  purchases: [
    'Totesys Purchase Orders',
    'Totesys Date',
    'Totesys Staff',
    'Totesys Counterparty',
    'Totesys Currency',
    'Totesys Location',
  ],
  payments: [
    'Totesys Payments',
    'Totesys Date',
    'Totesys Transaction',
    'Totesys Counterparty',
    'Totesys Currency',
    'Totesys Payment Type',
  ],
};

export interface PowerBiFiles {
  postgres: string;
  redshift: string;
  redshiftHasPlaceholders: boolean;
  /** One pair per totesys star: each star is its own Power BI model (file), on the same warehouse. */
  totesys: Record<TotesysStar, { postgres: string; redshift: string }>;
}

/**
 * Writes retail-pipeline-postgres.pbids and retail-pipeline-redshift.pbids into `outDir`, and one pair
 * per totesys star, `retail-pipeline-totesys-<star>-{postgres,redshift}.pbids`. A .pbids names a
 * server and database only (the views are picked in Power BI's navigator, docs/powerbi.md), so a
 * star's file differs from the invoice one by its name: one file per model a user builds.
 */
export async function writePowerBiFiles(opts: {
  outDir: string;
  postgresConnectionString: string;
  redshift: RedshiftTarget;
  mode: PowerBiMode;
}): Promise<PowerBiFiles> {
  await fs.mkdir(opts.outDir, { recursive: true });
  const pg = postgresTarget(opts.postgresConnectionString);
  const rs = redshiftServer(opts.redshift);
  const pair = (name: string) => ({
    postgres: path.join(opts.outDir, `${name}-postgres.pbids`),
    redshift: path.join(opts.outDir, `${name}-redshift.pbids`),
  });
  const files = pair('retail-pipeline');
  const totesys = {
    sales: pair('retail-pipeline-totesys-sales'),
    purchases: pair('retail-pipeline-totesys-purchases'),
    payments: pair('retail-pipeline-totesys-payments'),
  };
  const write = (file: string, c: PbidsConnection) =>
    fs.writeFile(file, `${JSON.stringify(buildPbids(c), null, 2)}\n`);
  const postgres: PbidsConnection = {
    protocol: 'postgresql',
    server: pg.server,
    database: pg.database,
    mode: opts.mode,
  };
  const redshift: PbidsConnection = {
    protocol: 'amazonredshift',
    server: rs.server,
    database: rs.database,
    mode: opts.mode,
  };
  await Promise.all(
    [files, ...Object.values(totesys)].flatMap((p) => [
      write(p.postgres, postgres),
      write(p.redshift, redshift),
    ]),
  );
  return { ...files, redshiftHasPlaceholders: rs.placeholders, totesys };
}

/** The views Power BI should load (schema `powerbi`, created by migration 0110). */
export const POWERBI_VIEWS = [
  'Sales',
  'Date',
  'Customer',
  'Product',
  'Country',
  'Customer Month',
  'Product Month',
  'Country Day',
  'Cancellations by Month',
  'Customer RFM',
  'Line Latency',
] as const;
