/**
 * Redshift's `COPY table [(columns)] FROM 's3://...' <options>` parsed into what the local Data API
 * needs to run it as PostgreSQL's COPY FROM STDIN over the objects it reads from the local S3
 * (local/redshift-data-copy.ts). Every option is a row of COPY_OPTIONS and of docs/aws.md's list of
 * translations; an option not in the table is refused with its name, never silently ignored.
 */

export type CopyFormat = 'csv' | 'json' | 'parquet' | 'text';

export interface S3Copy {
  /** As written, possibly schema-qualified. */
  table: string;
  columns: string[] | undefined;
  bucket: string;
  /** A key prefix (COPY loads every object under it), or the manifest's key with `manifest`. */
  key: string;
  format: CopyFormat;
  delimiter: string | undefined;
  quote: string | undefined;
  /** JSON: 'auto' (keys are column names) or 'auto ignorecase'. */
  jsonMode: 'auto' | 'auto ignorecase';
  gzip: boolean;
  ignoreHeader: number;
  emptyAsNull: boolean;
  /** ACCEPTINVCHARS: the character that replaces each byte that is not UTF-8. */
  acceptInvChars: string | undefined;
  nullAs: string | undefined;
  manifest: boolean;
}

export class CopyTranslationError extends Error {
  override name = 'CopyTranslationError';
}

type Token =
  | { kind: 'word'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'punct'; text: string };

/** Redshift's escapes in a literal: `\ooo` octal, `\n`, `\t`, `\\`, and `''`. */
function unescapeLiteral(body: string): string {
  return body.replace(/''|\\([0-7]{1,3}|[\s\S])/g, (_whole, e: string | undefined) => {
    if (e === undefined) return "'";
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
    return e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
  });
}

function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i] as string;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "'") {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === '\\' || (sql[j] === "'" && sql[j + 1] === "'")) j += 2;
        else if (sql[j] === "'") break;
        else j++;
      }
      if (j >= sql.length) throw new CopyTranslationError('unterminated string literal in COPY');
      out.push({ kind: 'string', text: unescapeLiteral(sql.slice(i + 1, j)) });
      i = j + 1;
    } else if (ch === '"') {
      const end = sql.indexOf('"', i + 1);
      if (end < 0) throw new CopyTranslationError('unterminated quoted identifier in COPY');
      out.push({ kind: 'word', text: sql.slice(i, end + 1) });
      i = end + 1;
    } else if ('(),;'.includes(ch)) {
      out.push({ kind: 'punct', text: ch });
      i++;
    } else {
      const m = /^[^\s'"(),;]+/.exec(sql.slice(i));
      const text = m?.[0] ?? ch;
      out.push({ kind: 'word', text });
      i += text.length;
    }
  }
  while (out.at(-1)?.text === ';') out.pop();
  return out;
}

class Cursor {
  private i = 0;
  constructor(private readonly tokens: Token[]) {}
  peek(): Token | undefined {
    return this.tokens[this.i];
  }
  done(): boolean {
    return this.i >= this.tokens.length;
  }
  next(what: string): Token {
    const t = this.tokens[this.i++];
    if (!t) throw new CopyTranslationError(`COPY ends where ${what} was expected`);
    return t;
  }
  word(): string | undefined {
    const t = this.peek();
    return t?.kind === 'word' ? t.text.toUpperCase() : undefined;
  }
  accept(word: string): boolean {
    if (this.word() !== word) return false;
    this.i++;
    return true;
  }
  string(what: string): string {
    this.accept('AS');
    const t = this.next(what);
    if (t.kind !== 'string')
      throw new CopyTranslationError(`COPY: ${what} must be a quoted string, found ${t.text}`);
    return t.text;
  }
  integer(what: string): number {
    this.accept('AS');
    const t = this.next(what);
    if (t.kind !== 'word' || !/^\d+$/.test(t.text))
      throw new CopyTranslationError(`COPY: ${what} must be a number`);
    return Number(t.text);
  }
}

/** Whether a statement is a COPY (the local Data API runs those itself). */
export function isCopy(sql: string): boolean {
  return /^\s*COPY\b/i.test(sql);
}

type OptionParser = (c: Cursor, copy: S3Copy) => void;

const onlyAuto = (name: string) => (c: Cursor) => {
  const value = c.string(name);
  if (value.toLowerCase() !== 'auto')
    throw new CopyTranslationError(
      `COPY ${name} '${value}' is not translated locally: only 'auto' (PostgreSQL's own date/time input)`,
    );
};

const jsonArgument = (c: Cursor, copy: S3Copy) => {
  copy.format = 'json';
  if (c.peek()?.kind !== 'string' && c.word() !== 'AS') return;
  const mode = c.string('JSON').toLowerCase();
  if (mode !== 'auto' && mode !== 'auto ignorecase')
    throw new CopyTranslationError(
      `COPY JSON '${mode}' is not translated locally: only 'auto' and 'auto ignorecase'`,
    );
  copy.jsonMode = mode;
};

const csvArgument = (c: Cursor, copy: S3Copy) => {
  copy.format = 'csv';
  if (c.accept('QUOTE')) copy.quote = c.string('QUOTE');
};

const FORMATS: Record<string, OptionParser> = {
  CSV: csvArgument,
  JSON: jsonArgument,
  PARQUET: (_, copy) => {
    copy.format = 'parquet';
  },
};

/**
 * The COPY options the local Data API translates: what each does there. Credentials and planner
 * hints are accepted and have no effect (no IAM, no statistics to update).
 */
export const COPY_OPTIONS: Record<string, { local: string; parse: OptionParser }> = {
  IAM_ROLE: { local: 'accepted, not checked (no IAM locally)', parse: (c) => void c.next('IAM_ROLE') },
  CREDENTIALS: { local: 'accepted, not checked', parse: (c) => void c.string('CREDENTIALS') },
  REGION: { local: 'accepted, ignored (one local S3)', parse: (c) => void c.string('REGION') },
  FORMAT: {
    local: 'CSV, JSON and PARQUET (see each)',
    parse: (c, copy) => {
      c.accept('AS');
      const name = c.word();
      const parse = name ? FORMATS[name] : undefined;
      if (!parse)
        throw new CopyTranslationError(`COPY FORMAT ${c.peek()?.text ?? ''} is not translated locally`);
      c.next('format');
      parse(c, copy);
    },
  },
  CSV: { local: "PostgreSQL's COPY (FORMAT csv)", parse: csvArgument },
  JSON: { local: "objects' keys mapped to the table's columns by name, fed as CSV", parse: jsonArgument },
  PARQUET: {
    local: 'read with core/parquet.ts, columns by position, fed as CSV',
    parse: FORMATS.PARQUET as OptionParser,
  },
  DELIMITER: {
    local: 'COPY ... DELIMITER',
    parse: (c, copy) => {
      copy.delimiter = c.string('DELIMITER');
    },
  },
  QUOTE: {
    local: 'COPY ... QUOTE',
    parse: (c, copy) => {
      copy.quote = c.string('QUOTE');
    },
  },
  GZIP: {
    local: 'gunzipped before PostgreSQL reads it',
    parse: (_, copy) => {
      copy.gzip = true;
    },
  },
  IGNOREHEADER: {
    local: 'the first n lines of each object skipped',
    parse: (c, copy) => {
      copy.ignoreHeader = c.integer('IGNOREHEADER');
    },
  },
  EMPTYASNULL: {
    local: "PostgreSQL CSV's own rule: an unquoted empty field is NULL",
    parse: (_, copy) => {
      copy.emptyAsNull = true;
    },
  },
  ACCEPTINVCHARS: {
    local: 'each byte that is not UTF-8 replaced by the character (default ?)',
    parse: (c, copy) => {
      copy.acceptInvChars =
        c.peek()?.kind === 'string' || c.word() === 'AS' ? c.string('ACCEPTINVCHARS') : '?';
    },
  },
  NULL: {
    local: 'COPY ... NULL',
    parse: (c, copy) => {
      copy.nullAs = c.string('NULL AS');
    },
  },
  DATEFORMAT: { local: "'auto' only: PostgreSQL's date input", parse: onlyAuto('DATEFORMAT') },
  TIMEFORMAT: { local: "'auto' only: PostgreSQL's timestamp input", parse: onlyAuto('TIMEFORMAT') },
  MANIFEST: {
    local: "the manifest's entries read (a mandatory one missing fails the COPY)",
    parse: (_, copy) => {
      copy.manifest = true;
    },
  },
  ENCODING: {
    local: 'UTF8 only',
    parse: (c) => {
      c.accept('AS');
      const enc = c.next('ENCODING').text.toUpperCase();
      if (enc !== 'UTF8') throw new CopyTranslationError(`COPY ENCODING ${enc} is not translated locally`);
    },
  },
  COMPUPDATE: { local: 'accepted, ignored', parse: (c) => void switchValue(c) },
  STATUPDATE: { local: 'accepted, ignored', parse: (c) => void switchValue(c) },
};

function switchValue(c: Cursor): void {
  const w = c.word();
  if (w && ['ON', 'OFF', 'TRUE', 'FALSE', 'PRESET'].includes(w)) c.next('value');
}

function parseTarget(c: Cursor): { table: string; columns: string[] | undefined } {
  const table = c.next('a table name');
  if (table.kind !== 'word') throw new CopyTranslationError('COPY needs a table name');
  let columns: string[] | undefined;
  if (c.peek()?.text === '(') {
    c.next('(');
    columns = [];
    for (;;) {
      const col = c.next('a column name');
      if (col.kind !== 'word') throw new CopyTranslationError('COPY column list: a column name expected');
      columns.push(col.text);
      const sep = c.next(') or ,');
      if (sep.text === ')') break;
      if (sep.text !== ',') throw new CopyTranslationError(`COPY column list: unexpected ${sep.text}`);
    }
  }
  return { table: table.text, columns };
}

/** A Redshift COPY from S3, parsed; a CopyTranslationError names what is not translated. */
export function parseCopy(sql: string): S3Copy {
  const c = new Cursor(tokenize(sql));
  if (!c.accept('COPY')) throw new CopyTranslationError('not a COPY statement');
  const { table, columns } = parseTarget(c);
  if (!c.accept('FROM')) throw new CopyTranslationError('COPY: FROM expected');
  const source = c.next('the source');
  const s3 = source.kind === 'string' ? /^s3:\/\/([^/]+)\/(.*)$/.exec(source.text) : null;
  if (!s3)
    throw new CopyTranslationError(`COPY FROM ${source.text}: the local Data API reads s3:// sources only`);
  const copy: S3Copy = {
    table,
    columns,
    bucket: s3[1] as string,
    key: s3[2] as string,
    format: 'text',
    delimiter: undefined,
    quote: undefined,
    jsonMode: 'auto',
    gzip: false,
    ignoreHeader: 0,
    emptyAsNull: false,
    acceptInvChars: undefined,
    nullAs: undefined,
    manifest: false,
  };
  while (!c.done()) {
    if (c.peek()?.text === ',') {
      c.next(',');
      continue;
    }
    const name = c.word();
    const option = name ? COPY_OPTIONS[name] : undefined;
    if (!option)
      throw new CopyTranslationError(
        `COPY option ${c.peek()?.text} is not translated by the local Redshift Data API`,
      );
    c.next(name as string);
    option.parse(c, copy);
  }
  if (copy.format === 'text')
    throw new CopyTranslationError('COPY without FORMAT (pipe-delimited text) is not translated locally');
  return copy;
}
