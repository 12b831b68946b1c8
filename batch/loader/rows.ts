import type { Readable } from 'node:stream';
import type { ColumnMap } from '#core/source-row';
import { CsvTyper } from '../csv-typer.ts';
import { checkHeader, EmptyFileError, readCsvHead } from '../source-stream.ts';
import { CSV_FIELDS, type SourceFormat } from '../sql.ts';
import { LineTyper, NdjsonTyper, type RowEncoder } from '../typer.ts';
import { QuarantineError } from './quarantine.ts';

/** A CSV's text encoding as the manifest records it. */
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
  /** The text encoding the rows were read in: settled once `rows` has been read to its end. */
  readonly encoding: TextEncoding;
  /** Stops reading the source and drops the rejected rows' spool. */
  close(): Promise<void>;
}

export interface TypeOptions {
  loadId: string;
  objectKey: string;
  format: SourceFormat;
  encoder: RowEncoder;
}

/**
 * The typer may fail (bytes that are not text, a broken source) before the load's COPY or upload
 * starts reading it: that reader meets the error as the stream's errored state (a pipeline or an
 * async iteration of a destroyed stream rejects with it), but an 'error' event nobody listens to
 * yet would end the process.
 */
function heard<S extends Readable>(stream: S): S {
  stream.on('error', () => undefined);
  return stream;
}

/**
 * Types `source` (the object's inflated bytes). A CSV whose header lacks a required column, or an
 * empty one, is a QuarantineError: it can never load. Text is held to the one decoder of
 * core/text-encoding.ts: an archive object strictly UTF-8, a CSV in the encoding the detection rule
 * finds as its rows stream by (a Latin-1 file reads right in one pass); bytes that break it (a
 * file mixing encodings, a damaged archive object) fail the read with a TextEncodingError naming
 * the line, which quarantines the object.
 */
export async function typedRows(source: Readable, options: TypeOptions): Promise<TypedRows> {
  const { loadId, objectKey, encoder } = options;
  const lines = new LineTyper({ loadId, objectKey, encoder });
  const done = (close: () => void) => async () => {
    close();
    await lines.rejects.discard();
  };
  if (options.format === 'ndjson') {
    const rows = heard(source.pipe(new NdjsonTyper(lines)));
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
  // Not the head's sniff: only a pass over every byte can tell a Latin-1 or mixed file late in it.
  const typer = new CsvTyper(lines, columns, 'detect', { offset: head.headerBytes });
  const rows = heard(head.body.pipe(typer));
  head.body.on('error', (err) => rows.destroy(err));
  return {
    lines,
    rows,
    columns: encoder.columns,
    header: head.columns,
    extra: check.extra,
    get encoding() {
      return typer.encoding === 'latin1' ? 'LATIN1' : 'UTF8';
    },
    close: done(() => head.body.destroy()),
  };
}
