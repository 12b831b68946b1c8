import { ByteWriter } from 'hyparquet-writer';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { writeRleBitPackedHybrid } from 'hyparquet-writer/src/encoding.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { snappyCompress } from 'hyparquet-writer/src/snappy.js';
import { CREATED_BY } from '#adapters/parquet-writer';
import { element, type ParquetColumn } from '#core/parquet';

/**
 * A lean Parquet writer for columns already in their physical form, written for the lake's invoice
 * lines (lake/invoice-lines.ts): 541,909 lines took hyparquet-writer's generic path 3-8 s (a bigint
 * per INT64 value, statistics, a dictionary tried on every column, a check per value), ~1 us a value.
 * Here each kind of column is a loop over a typed array: INT32 and INT64 PLAIN straight from numbers
 * (an INT64 from a double exact below 2^53: no bigint), strings dictionary-encoded from ids the caller
 * computed, BOOLEAN bit-packed; data pages v2, snappy for numbers and flags, string chunks
 * uncompressed (dictionaryPage says why). The file's schema elements, thrift pages and
 * footer are hyparquet-writer's own (its exported page header and metadata writers), so the schema a
 * reader sees is exactly writeParquet's; no min/max statistics are written.
 */

export type LeanColumn =
  | { kind: 'int32'; values: Int32Array }
  /** INT64 values as numbers (whole, below 2^53; NaN: null), `exact` the rows past 2^53 as bigints. */
  | { kind: 'int64'; values: Float64Array; exact?: ReadonlyMap<number, bigint> }
  | { kind: 'boolean'; values: Uint8Array }
  /** Strings: `ids[i]` indexes `dictionary` (UTF-8 bytes of each distinct value); -1: null. */
  | { kind: 'string'; ids: Int32Array; dictionary: readonly Uint8Array[] };

/** Rows per data page: pages stay near a megabyte at most for an INT64 column. */
const PAGE_ROWS = 1 << 16;

interface ColumnMeta {
  meta_data: {
    type: string;
    encodings: string[];
    path_in_schema: string[];
    codec: 'SNAPPY' | 'UNCOMPRESSED';
    num_values: bigint;
    total_compressed_size: bigint;
    total_uncompressed_size: bigint;
    data_page_offset: bigint;
    dictionary_page_offset?: bigint;
  };
  file_offset: bigint;
}

const isNull = (c: LeanColumn, i: number) =>
  c.kind === 'int64' ? Number.isNaN(c.values[i]) : c.kind === 'string' ? c.ids[i] === -1 : false;

/** The page's values, nulls left out, in the column's PLAIN or dictionary-index form. */
function pageBody(c: LeanColumn, start: number, end: number, bitWidth: number): Uint8Array {
  switch (c.kind) {
    case 'int32':
      return new Uint8Array(c.values.buffer, c.values.byteOffset + start * 4, (end - start) * 4).slice();
    case 'int64': {
      const out = new DataView(new ArrayBuffer((end - start) * 8));
      let at = 0;
      for (let i = start; i < end; i++) {
        const v = c.values[i] as number;
        if (Number.isNaN(v)) continue;
        const big = c.exact?.get(i);
        if (big !== undefined) {
          out.setBigInt64(at, big, true);
          at += 8;
          continue;
        }
        const hi = Math.floor(v / 4294967296);
        out.setUint32(at, v - hi * 4294967296, true);
        out.setInt32(at + 4, hi, true);
        at += 8;
      }
      return new Uint8Array(out.buffer, 0, at);
    }
    case 'boolean': {
      const out = new Uint8Array(Math.ceil((end - start) / 8));
      for (let i = start; i < end; i++)
        if (c.values[i]) out[(i - start) >> 3] = (out[(i - start) >> 3] as number) | (1 << ((i - start) & 7));
      return out;
    }
    case 'string': {
      const ids: number[] = [];
      for (let i = start; i < end; i++) if ((c.ids[i] as number) >= 0) ids.push(c.ids[i] as number);
      const w = new ByteWriter(((ids.length * bitWidth) >> 3) + 64);
      w.appendUint8(bitWidth);
      writeRleBitPackedHybrid(w, ids, bitWidth);
      return w.getBytes();
    }
  }
}

/**
 * The dictionary page, PLAIN and not compressed: a string column's chunk is UNCOMPRESSED (its id
 * pages are bit-packed already, and snappy over every day file's dictionary text was a fifth of the
 * real file's encoding for about a third of its bytes).
 */
function dictionaryPage(writer: ByteWriter, dictionary: readonly Uint8Array[]): number {
  let size = 0;
  for (const d of dictionary) size += 4 + d.byteLength;
  const plain = new Uint8Array(size);
  let at = 0;
  for (const d of dictionary) {
    const n = d.byteLength;
    plain[at] = n & 0xff;
    plain[at + 1] = (n >>> 8) & 0xff;
    plain[at + 2] = (n >>> 16) & 0xff;
    plain[at + 3] = n >>> 24;
    at += 4;
    // Most values are a few bytes: a loop costs less than a call to set() each.
    if (n < 32) for (let k = 0; k < n; k++) plain[at + k] = d[k] as number;
    else plain.set(d, at);
    at += n;
  }
  const start = writer.offset;
  writePageHeader(writer, {
    type: 'DICTIONARY_PAGE',
    uncompressed_page_size: plain.byteLength,
    compressed_page_size: plain.byteLength,
    dictionary_page_header: { num_values: dictionary.length, encoding: 'PLAIN' },
  } as Parameters<typeof writePageHeader>[1]);
  writer.appendBytes(plain);
  return writer.offset - start;
}

function writeColumn(writer: ByteWriter, schema: ParquetColumn, c: LeanColumn, rows: number): ColumnMeta {
  const schemaType = element(schema).type;
  const codec = c.kind === 'string' ? 'UNCOMPRESSED' : 'SNAPPY';
  const start = writer.offset;
  let uncompressed = 0;
  let dictionaryOffset: bigint | undefined;
  let bitWidth = 0;
  if (c.kind === 'string') {
    dictionaryOffset = BigInt(writer.offset);
    uncompressed += dictionaryPage(writer, c.dictionary);
    bitWidth = Math.ceil(Math.log2(Math.max(c.dictionary.length - 1, 0) + 1));
  }
  const dataOffset = BigInt(writer.offset);
  for (let first = 0; first < rows || first === 0; first += PAGE_ROWS) {
    const end = Math.min(rows, first + PAGE_ROWS);
    const levels = new ByteWriter(schema.nullable ? ((end - first) >> 3) + 64 : 16);
    let nulls = 0;
    if (schema.nullable) {
      const defined = new Uint8Array(end - first);
      for (let i = first; i < end; i++) {
        if (isNull(c, i)) nulls++;
        else defined[i - first] = 1;
      }
      writeRleBitPackedHybrid(levels, defined, 1);
    } else
      for (let i = first; i < end; i++)
        if (isNull(c, i)) throw new Error(`column ${schema.name}: a null in a required column`);
    const body = pageBody(c, first, end, bitWidth);
    // Dictionary ids are bit-packed or run-length already: snappy would spend time for little.
    const compress = codec === 'SNAPPY';
    const compressed = compress ? snappyCompress(body) : body;
    const headerStart = writer.offset;
    writePageHeader(writer, {
      type: 'DATA_PAGE_V2',
      uncompressed_page_size: levels.offset + body.byteLength,
      compressed_page_size: levels.offset + compressed.byteLength,
      data_page_header_v2: {
        num_values: end - first,
        num_nulls: nulls,
        num_rows: end - first,
        encoding: c.kind === 'string' ? 'RLE_DICTIONARY' : 'PLAIN',
        definition_levels_byte_length: levels.offset,
        repetition_levels_byte_length: 0,
        is_compressed: compress,
      },
    } as Parameters<typeof writePageHeader>[1]);
    uncompressed += writer.offset - headerStart + levels.offset + body.byteLength;
    writer.appendBytes(levels.getBytes());
    writer.appendBytes(compressed);
    if (end >= rows) break;
  }
  return {
    meta_data: {
      type: schemaType as string,
      encodings: c.kind === 'string' ? ['PLAIN', 'RLE_DICTIONARY'] : ['PLAIN'],
      path_in_schema: [schema.name],
      codec,
      num_values: BigInt(rows),
      total_compressed_size: BigInt(writer.offset - start),
      total_uncompressed_size: BigInt(uncompressed),
      data_page_offset: dataOffset,
      ...(dictionaryOffset === undefined ? {} : { dictionary_page_offset: dictionaryOffset }),
    },
    file_offset: BigInt(start),
  };
}

/** One row group of `rows` rows, a column per schema column (in its order), as Parquet bytes. */
export function writeLeanParquet(
  schema: readonly ParquetColumn[],
  columns: readonly LeanColumn[],
  rows: number,
): Uint8Array {
  if (columns.length !== schema.length)
    throw new Error(`${columns.length} columns for a schema of ${schema.length}`);
  const writer = new ByteWriter(rows * 48 + 4096);
  writer.appendUint32(0x31524150); // PAR1
  const chunks = schema.map((s, i) => writeColumn(writer, s, columns[i] as LeanColumn, rows));
  const metadata = {
    version: 2,
    created_by: CREATED_BY,
    schema: [{ name: 'root', num_children: schema.length }, ...schema.map(element)],
    num_rows: BigInt(rows),
    row_groups: [
      {
        columns: chunks,
        total_byte_size: chunks.reduce((n, c) => n + c.meta_data.total_uncompressed_size, 0n),
        num_rows: BigInt(rows),
        total_compressed_size: BigInt(writer.offset - 4),
      },
    ],
  };
  writeMetadata(writer, metadata as unknown as Parameters<typeof writeMetadata>[1]);
  writer.appendUint32(0x31524150);
  return new Uint8Array(writer.getBuffer());
}
