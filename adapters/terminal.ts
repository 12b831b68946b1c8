import Table from 'cli-table3';

/**
 * What the process writes for people: whether a stream is a terminal, whether it gets colour, and
 * the one way tables and times are rendered. Here rather than in `cli/` because `analytics/` and the
 * logger render for the terminal too, and they may import `adapters/` but not `cli/`.
 */

/** The part of a stream (`process.stdout`, `process.stderr`) the decisions below look at. */
export interface OutputStream {
  isTTY?: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

/** A person is reading this stream: a terminal that can show more than plain text. */
export function isInteractive(stream: OutputStream, env: Env = process.env): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/**
 * The one colour rule, as Node's own `tty.hasColors()` reads the same variables: FORCE_COLOR forces
 * colour on (or, as `0`/`false`, off) even into a pipe; otherwise NO_COLOR (any non-empty value, see
 * no-color.org) turns it off; otherwise only an interactive terminal gets colour. A pipe or a file
 * never gets escape codes it did not ask for.
 */
export function colourEnabled(stream: OutputStream, env: Env = process.env): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined) return !['0', 'false'].includes(force.trim().toLowerCase());
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return isInteractive(stream, env);
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/**
 * `2026-12-06 07:03:14`, always in UTC (a column holding times says `(UTC)` in its heading): the
 * stores record instants, and a terminal in another zone must show the same text as a log or a file.
 */
export function formatTime(at: Date): string {
  if (Number.isNaN(at.getTime())) return 'invalid date';
  return (
    `${at.getUTCFullYear()}-${pad2(at.getUTCMonth() + 1)}-${pad2(at.getUTCDate())} ` +
    `${pad2(at.getUTCHours())}:${pad2(at.getUTCMinutes())}:${pad2(at.getUTCSeconds())}`
  );
}

/** What a table cell may hold; pg hands back timestamps as Date and bigints as text. */
export type Cell = string | number | bigint | boolean | Date | null | undefined;

function cellText(value: Cell): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return formatTime(value);
  return String(value);
}

export interface TableOptions {
  head: string[];
  rows: ReadonlyArray<ReadonlyArray<Cell>>;
  align?: Array<'left' | 'right' | 'center'>;
  /** Colour for the borders; decide it with `colourEnabled(stream)` for the stream it goes to. */
  colour: boolean;
}

/** A boxed table as text. Without colour it holds no escape code at all. */
export function renderTable(opts: TableOptions): string {
  const table = new Table({
    head: opts.head,
    ...(opts.align ? { colAligns: opts.align } : {}),
    // cli-table3 paints borders grey and headings red unless told otherwise, pipe or not, and when
    // asked to, its colour library still decides for itself (it turns colour off wherever CI is
    // set): so it draws plain, and the borders are painted here, by the one rule above.
    style: { head: [], border: [] },
  });
  for (const row of opts.rows) table.push(row.map(cellText));
  const text = table.toString();
  return opts.colour ? text.replace(BORDER_RUN, (run) => `${GREY}${run}${RESET_FG}`) : text;
}

/** A run of the box-drawing characters cli-table3 draws its borders with. */
const BORDER_RUN = /[\u2500-\u257f]+/g;
const GREY = '\u001b[90m';
const RESET_FG = '\u001b[39m';

/** The table for standard output: coloured only when standard output is a terminal that wants it. */
export function stdoutTable(opts: Omit<TableOptions, 'colour'>): string {
  return renderTable({ ...opts, colour: colourEnabled(process.stdout) });
}
