import type { Readable } from 'node:stream';
import type { ColumnMap } from '#core/source-row';
import { CsvTyper } from '../csv-typer.ts';
import { checkHeader, EmptyFileError, readCsvHead } from '../source-stream.ts';
import { CSV_FIELDS, type SourceFormat } from '../sql.ts';
import { LineTyper, NdjsonTyper, type RowEncoder } from '../typer.ts';
import { QuarantineError } from './quarantine.ts';

export type TextEncoding = 'UTF8' | 'LATIN1';

/** An object's rows on their way to the warehouse: typed and validated, encoded for one COPY. */
export interface TypedRows {
  /** Counts, rejected rows, dimension counts: complete once `rows` has been read to its end. */
  lines: LineTyper;
  /** The encoded rows (`encoder`'s format), read once by the COPY or the staging upload. */
  rows: Readable;
  /** The COPY's column list: the encoder's, in the order it writes the fields. */
  columns: readonly string[];
  /** The CSV's header as written (none for NDJSON). */
  header: string[] | undefined;
  /** Columns beyond the required ones: ignored, and listed in the manifest. */
  extra: string[];
  encoding: TextEncoding;
  /** Stops reading the source and drops the rejected rows' spool. */
  close(): Promise<void>;
}

export interface TypeOptions {
  loadId: string;
  objectKey: string;
  format: SourceFormat;
  encoder: RowEncoder;
  /** The CSV's text encoding when known (a restart after invalid UTF-8); else sniffed. */
  encoding?: TextEncoding | undefined;
}

/**
 * Types `source` (the object's inflated bytes). A CSV whose header lacks a required column, or an
 * empty one, is a QuarantineError: it can never load.
 */
export async function typedRows(source: Readable, options: TypeOptions): Promise<TypedRows> {
  const { loadId, objectKey, encoder } = options;
  const lines = new LineTyper({ loadId, objectKey, encoder });
  const done = (close: () => void) => async () => {
    close();
    await lines.rejects.discard();
  };
  if (options.format === 'ndjson') {
    const rows = source.pipe(new NdjsonTyper(lines));
    source.on('error', (err) => rows.destroy(err));
    return {
      lines,
      rows,
      columns: encoder.columns,
      header: undefined,
      extra: [],
      encoding: 'UTF8',
      close: done(() => source.destroy()),
    };
  }
  let head: Awaited<ReturnType<typeof readCsvHead>>;
  try {
    head = await readCsvHead(source);
  } catch (err) {
    if (err instanceof EmptyFileError) throw new QuarantineError('the file is empty', {}, { cause: err });
    throw err;
  }
  const check = checkHeader(head.columns);
  if (!check.columnOf) {
    head.body.destroy();
    const problem = check.duplicated?.length
      ? `duplicated columns: ${check.duplicated.join(', ')}`
      : `missing required columns: ${check.missing.join(', ')}`;
    throw new QuarantineError(problem, {
      missing: check.missing,
      duplicated: check.duplicated ?? [],
      header: head.columns,
    });
  }
  const columnOf = check.columnOf;
  const columns = Object.fromEntries(CSV_FIELDS.map((f) => [f, columnOf[f] - 1])) as ColumnMap;
  const encoding = options.encoding ?? head.encoding;
  const rows = head.body.pipe(new CsvTyper(lines, columns, encoding === 'UTF8' ? 'utf8' : 'latin1'));
  head.body.on('error', (err) => rows.destroy(err));
  return {
    lines,
    rows,
    columns: encoder.columns,
    header: head.columns,
    extra: check.extra,
    encoding,
    close: done(() => head.body.destroy()),
  };
}
