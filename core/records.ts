import { encodeLineItem, frameLineItems, LINES_RECORD_OVERHEAD } from './avro.ts';
import type { AcceptedLine } from './invoice-line.ts';

/**
 * How a request's lines become stream records. Kinesis bills a PUT payload unit per 25 KiB of a
 * record (Data plus partition key) and throttles per record, so one line per record (~150 bytes)
 * paid for a mostly empty unit each. A record now carries the lines of one invoice from one request,
 * in request order, with Data up to 24 KiB: one unit with the partition key (the invoice number,
 * so one shard keeps each invoice's order and the consumer's per-shard knowledge of it).
 */
export interface RecordBounds {
  /** Upper bound of a record's Data (header included). */
  maxDataBytes: number;
  /** Upper bound of lines per record: keeps a consumer's unit of retry and of dead letters small. */
  maxLines: number;
}

export const RECORD_BOUNDS: Readonly<RecordBounds> = Object.freeze({
  maxDataBytes: 24 * 1024,
  maxLines: 500,
});

/** Kinesis's PUT payload unit: 25 KiB of Data plus partition key, counted per record, rounded up. */
export const PUT_PAYLOAD_UNIT_BYTES = 25 * 1024;

export function putPayloadUnits(dataBytes: number, partitionKey: string): number {
  return Math.max(1, Math.ceil((dataBytes + Buffer.byteLength(partitionKey)) / PUT_PAYLOAD_UNIT_BYTES));
}

/**
 * Groups items (key + encoded size) into records: only items of one key share a record, each key's
 * items stay in their order, and a record's size (`overhead` plus its items) stays within the
 * bound. An item alone over the bound gets a record of its own (the API's field limits keep a line
 * far below it). Answers item indexes per record, records ordered by their first item.
 */
export function groupItems(
  items: readonly { key: string; bytes: number }[],
  bounds: RecordBounds = RECORD_BOUNDS,
  overhead = LINES_RECORD_OVERHEAD,
): number[][] {
  const groups: number[][] = [];
  const open = new Map<string, { indexes: number[]; bytes: number }>();
  items.forEach(({ key, bytes }, i) => {
    const group = open.get(key);
    if (group && group.indexes.length < bounds.maxLines && group.bytes + bytes <= bounds.maxDataBytes) {
      group.indexes.push(i);
      group.bytes += bytes;
      return;
    }
    const fresh = { indexes: [i], bytes: overhead + bytes };
    groups.push(fresh.indexes);
    open.set(key, fresh);
  });
  return groups;
}

/** One stream record: the lines it carries, its Data (Avro, current writer schema), its partition key. */
export interface LineRecord {
  partitionKey: string;
  lines: AcceptedLine[];
  data: Buffer;
}

/** A request's lines as stream records (each line encoded once). */
export function toRecords(
  lines: readonly AcceptedLine[],
  bounds: RecordBounds = RECORD_BOUNDS,
): LineRecord[] {
  const encoded = lines.map(encodeLineItem);
  const groups = groupItems(
    lines.map((l, i) => ({ key: l.invoiceNo, bytes: (encoded[i] as Buffer).length })),
    bounds,
  );
  return groups.map((indexes) => {
    const first = lines[indexes[0] as number] as AcceptedLine;
    return {
      partitionKey: first.invoiceNo,
      lines: indexes.map((i) => lines[i] as AcceptedLine),
      data: frameLineItems(indexes.map((i) => encoded[i] as Buffer)),
    };
  });
}
