import { ByteWriter } from 'hyparquet-writer';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { CREATED_BY } from '#adapters/parquet-writer';
import { element, type ParquetColumn } from '#core/parquet';
import { snappyCompress } from './snappy.ts';

/**
 * A lean Parquet writer for columns already in their physical form, written for the lake's invoice
 * lines (lake/invoice-lines.ts): 541,909 lines took hyparquet-writer's generic path 3-8 s (a bigint
 * per INT64 value, statistics, a dictionary tried on every column, a check per value), ~1 us a value.
 * Here each kind of column is a loop over a typed array: INT32 and INT64 PLAIN straight from numbers
 * (an INT64 from a double exact below 2^53: no bigint), strings and repeating numbers
 * dictionary-encoded from ids the caller computed, BOOLEAN bit-packed; data pages v2, snappy
 * (./snappy.ts) for PLAIN numbers and flags, dictionary-encoded chunks uncompressed (dictionaryPage
 * says why). The file's schema elements, thrift pages and footer are hyparquet-writer's own (its
 * exported page header and metadata writers), so the schema a reader sees is exactly writeParquet's;
 * no min/max statistics are written.
 */

export type LeanColumn =
  | { kind: 'int32'; values: Int32Array }
  /** INT64 values as numbers (whole, below 2^53; NaN: null), `exact` the rows past 2^53 as bigints. */
  | { kind: 'int64'; values: Float64Array; exact?: ReadonlyMap<number, bigint> }
  | { kind: 'boolean'; values: Uint8Array }
  /**
   * Dictionary-encoded (strings, and numbers that repeat): `ids[i]` numbers a value of the
   * dictionary (-1: null); `dictionary` holds its `count` values PLAIN-encoded in the column's
   * physical type, as the dictionary page carries them (a string: a 4-byte little-endian length,
   * then its UTF-8 bytes, StringTable.plain in ./lake-lines.ts; an INT32 or INT64: its 4 or 8 bytes
   * little-endian).
   */
  | { kind: 'dictionary'; ids: Int32Array; dictionary: Uint8Array; count: number };

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

/**
 * The first `n` values (each below 2^bitWidth, bitWidth <= 24) in Parquet's RLE / bit-packed
 * hybrid, as hyparquet-writer's writeRleBitPackedHybrid lays them out (runs of 8 or more equal
 * values as RLE, the rest bit-packed 8 at a time), written straight into one array: its writer's
 * call per byte was a third of the real file's encoding, profiled.
 */
export function rleBitPacked(values: ArrayLike<number>, n: number, bitWidth: number): Uint8Array {
  if (bitWidth > 24) throw new Error(`a bit width of ${bitWidth}: at most 24`);
  const width = (bitWidth + 7) >> 3;
  const out = new Uint8Array(Math.ceil(n / 8) * (bitWidth + 10) + 16);
  let at = 0;
  const varint = (v: number) => {
    while (v > 0x7f) {
      out[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    out[at++] = v;
  };
  let groups = 0;
  let packedStart = 0;
  const flush = () => {
    varint((groups << 1) | 1);
    let buffer = 0;
    let bits = 0;
    const end = packedStart + groups * 8;
    for (let k = packedStart; k < end; k++) {
      buffer |= (k < n ? (values[k] as number) : 0) << bits;
      bits += bitWidth;
      while (bits >= 8) {
        out[at++] = buffer & 0xff;
        buffer >>>= 8;
        bits -= 8;
      }
    }
    if (bits > 0) out[at++] = buffer & 0xff;
    groups = 0;
  };
  let i = 0;
  while (i < n) {
    const v = values[i] as number;
    let run = 1;
    while (i + run < n && values[i + run] === v) run++;
    if (run >= 8) {
      if (groups > 0) flush();
      varint(run * 2);
      for (let j = 0; j < width; j++) out[at++] = (v >>> (j * 8)) & 0xff;
      i += run;
    } else {
      if (groups === 0) packedStart = i;
      groups++;
      i += 8;
    }
  }
  if (groups > 0) flush();
  return out.subarray(0, at);
}

/**
 * Rows [start, end)'s definition levels (1: a value, 0: null) into `defined` from index 0, and how
 * many are null: a loop per kind (a kind test per row was a tenth of the encoding, profiled).
 */
function definitions(c: LeanColumn, start: number, end: number, defined: Uint8Array | undefined): number {
  let nulls = 0;
  if (c.kind === 'int64') {
    const v = c.values;
    for (let i = start; i < end; i++) {
      const isValue = !Number.isNaN(v[i]);
      if (defined) defined[i - start] = isValue ? 1 : 0;
      if (!isValue) nulls++;
    }
  } else if (c.kind === 'dictionary') {
    const ids = c.ids;
    for (let i = start; i < end; i++) {
      const isValue = (ids[i] as number) >= 0;
      if (defined) defined[i - start] = isValue ? 1 : 0;
      if (!isValue) nulls++;
    }
  } else if (defined) defined.fill(1, 0, end - start);
  return nulls;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The page's values, nulls left out (`nulls` of them in the page), in the column's PLAIN or
 * dictionary-index form.
 */
function pageBody(c: LeanColumn, start: number, end: number, bitWidth: number, nulls: number): Uint8Array {
  switch (c.kind) {
    case 'int32':
      return new Uint8Array(c.values.buffer, c.values.byteOffset + start * 4, (end - start) * 4).slice();
    case 'int64': {
      const exact = c.exact?.size ? c.exact : undefined;
      if (!exact && LITTLE_ENDIAN) {
        // Each value as its two 32-bit halves, stored as they lie in memory on this machine.
        const words = new Int32Array((end - start) * 2);
        let at = 0;
        for (let i = start; i < end; i++) {
          const v = c.values[i] as number;
          if (Number.isNaN(v)) continue; // null
          const hi = Math.floor(v / 4294967296);
          words[at] = v - hi * 4294967296;
          words[at + 1] = hi;
          at += 2;
        }
        return new Uint8Array(words.buffer, 0, at * 4);
      }
      const out = new DataView(new ArrayBuffer((end - start) * 8));
      let at = 0;
      for (let i = start; i < end; i++) {
        const v = c.values[i] as number;
        if (Number.isNaN(v)) continue;
        const big = exact?.get(i);
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
    case 'dictionary': {
      // A page without nulls (most of them) is packed where it lies: copying every id cost ~12 ms
      // of the real file's ~160 ms encoding (its 13 month files, measured in one process).
      let ids = c.ids.subarray(start, end);
      let n = end - start;
      if (nulls > 0) {
        ids = new Int32Array(end - start);
        n = 0;
        for (let i = start; i < end; i++) {
          const id = c.ids[i] as number;
          if (id >= 0) ids[n++] = id;
        }
      }
      const packed = rleBitPacked(ids, n, bitWidth);
      const out = new Uint8Array(packed.byteLength + 1);
      out[0] = bitWidth;
      out.set(packed, 1);
      return out;
    }
  }
}

/**
 * The dictionary page, PLAIN and not compressed: a dictionary-encoded chunk is UNCOMPRESSED (its id
 * pages are bit-packed or run-length already, and snappy over every day file's dictionary text was a
 * fifth of the real file's encoding for about a third of its bytes, when the lake had a file per day).
 */
function dictionaryPage(writer: ByteWriter, plain: Uint8Array, count: number): number {
  const start = writer.offset;
  writePageHeader(writer, {
    type: 'DICTIONARY_PAGE',
    uncompressed_page_size: plain.byteLength,
    compressed_page_size: plain.byteLength,
    dictionary_page_header: { num_values: count, encoding: 'PLAIN' },
  } as Parameters<typeof writePageHeader>[1]);
  writer.appendBytes(plain);
  return writer.offset - start;
}

function writeColumn(writer: ByteWriter, schema: ParquetColumn, c: LeanColumn, rows: number): ColumnMeta {
  const schemaType = element(schema).type;
  const codec = c.kind === 'dictionary' ? 'UNCOMPRESSED' : 'SNAPPY';
  const start = writer.offset;
  let uncompressed = 0;
  let dictionaryOffset: bigint | undefined;
  let bitWidth = 0;
  if (c.kind === 'dictionary') {
    dictionaryOffset = BigInt(writer.offset);
    uncompressed += dictionaryPage(writer, c.dictionary, c.count);
    bitWidth = Math.ceil(Math.log2(Math.max(c.count - 1, 0) + 1));
  }
  const dataOffset = BigInt(writer.offset);
  for (let first = 0; first < rows || first === 0; first += PAGE_ROWS) {
    const end = Math.min(rows, first + PAGE_ROWS);
    let levels: Uint8Array = new Uint8Array(0);
    const defined = schema.nullable ? new Uint8Array(end - first) : undefined;
    const nulls = definitions(c, first, end, defined);
    if (defined) levels = rleBitPacked(defined, end - first, 1);
    else if (nulls > 0) throw new Error(`column ${schema.name}: a null in a required column`);
    const body = pageBody(c, first, end, bitWidth, nulls);
    // Dictionary ids are bit-packed or run-length already: snappy would spend time for little.
    const compress = codec === 'SNAPPY';
    const compressed = compress ? snappyCompress(body) : body;
    const headerStart = writer.offset;
    writePageHeader(writer, {
      type: 'DATA_PAGE_V2',
      uncompressed_page_size: levels.byteLength + body.byteLength,
      compressed_page_size: levels.byteLength + compressed.byteLength,
      data_page_header_v2: {
        num_values: end - first,
        num_nulls: nulls,
        num_rows: end - first,
        encoding: c.kind === 'dictionary' ? 'RLE_DICTIONARY' : 'PLAIN',
        definition_levels_byte_length: levels.byteLength,
        repetition_levels_byte_length: 0,
        is_compressed: compress,
      },
    } as Parameters<typeof writePageHeader>[1]);
    uncompressed += writer.offset - headerStart + levels.byteLength + body.byteLength;
    writer.appendBytes(levels);
    writer.appendBytes(compressed);
    if (end >= rows) break;
  }
  return {
    meta_data: {
      type: schemaType as string,
      encodings: c.kind === 'dictionary' ? ['PLAIN', 'RLE_DICTIONARY'] : ['PLAIN'],
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
