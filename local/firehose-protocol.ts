/**
 * The subset of the Firehose JSON protocol (AWS JSON 1.1, target prefix Firehose_20150804) the local
 * Firehose speaks, with the limits and error answers of the real service:
 * - more than 500 records, a record over 1,024,000 bytes, a missing member: `ValidationException`
 *   ("N validation error(s) detected: ..."), not modelled by the SDK, so it surfaces as a
 *   FirehoseServiceException named ValidationException, as against AWS;
 * - more than 4 MiB in one PutRecordBatch: `InvalidArgumentException` "Records size exceeds 4 MB limit";
 * - an unknown stream: `ResourceNotFoundException` "Firehose <name> not found under account <id>.".
 * The record count is checked before sizes, as the service does.
 */
export const TARGET_PREFIX = 'Firehose_20150804.';
export const ACCOUNT_ID = '000000000000';
export const MAX_BATCH_RECORDS = 500;
export const MAX_RECORD_BYTES = 1_024_000;
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

const STREAM_NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

/** An error answer of the API: `{"__type": type, "message": message}` with the HTTP status. */
export class FirehoseApiError extends Error {
  override name = 'FirehoseApiError';
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isValidStreamName(name: string): boolean {
  return STREAM_NAME.test(name);
}

export function streamNotFound(name: string): FirehoseApiError {
  return new FirehoseApiError(
    'ResourceNotFoundException',
    `Firehose ${name} not found under account ${ACCOUNT_ID}.`,
  );
}

export function serializationError(message: string): FirehoseApiError {
  return new FirehoseApiError('SerializationException', message);
}

function validationError(problems: string[]): FirehoseApiError {
  const n = problems.length;
  return new FirehoseApiError(
    'ValidationException',
    `${n} validation error${n === 1 ? '' : 's'} detected: ${problems.join('; ')}`,
  );
}

const bufferValue = (n: number) => `java.nio.HeapByteBuffer[pos=0 lim=${n} cap=${n}]`;
const notNull = (at: string) => `Value null at '${at}' failed to satisfy constraint: Member must not be null`;

function readStreamName(body: Record<string, unknown>, problems: string[]): string {
  const value = body.DeliveryStreamName;
  if (value === undefined || value === null) {
    problems.push(notNull('deliveryStreamName'));
    return '';
  }
  if (typeof value !== 'string') throw serializationError('DeliveryStreamName must be a string');
  if (!STREAM_NAME.test(value)) {
    problems.push(
      `Value '${value}' at 'deliveryStreamName' failed to satisfy constraint: ` +
        'Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 64',
    );
  }
  return value;
}

function readData(record: unknown, at: string, problems: string[]): Buffer | undefined {
  if (record === null || typeof record !== 'object') {
    problems.push(notNull(at.replace(/\.data$/, '')));
    return undefined;
  }
  const data = (record as Record<string, unknown>).Data;
  if (data === undefined || data === null) {
    problems.push(notNull(at));
    return undefined;
  }
  if (typeof data !== 'string') throw serializationError('Data must be a base64-encoded string');
  const decoded = Buffer.from(data, 'base64');
  if (decoded.length > MAX_RECORD_BYTES) {
    problems.push(
      `Value '${bufferValue(decoded.length)}' at '${at}' failed to satisfy constraint: ` +
        `Member must have length less than or equal to ${MAX_RECORD_BYTES}`,
    );
  }
  return decoded;
}

export interface PutInput {
  deliveryStreamName: string;
  records: Buffer[];
  bytes: number;
}

export function parsePutRecord(body: Record<string, unknown>): PutInput {
  const problems: string[] = [];
  const deliveryStreamName = readStreamName(body, problems);
  const data = readData(body.Record, 'record.data', problems);
  if (problems.length > 0 || !data) throw validationError(problems);
  return { deliveryStreamName, records: [data], bytes: data.length };
}

export function parsePutRecordBatch(body: Record<string, unknown>): PutInput {
  const problems: string[] = [];
  const deliveryStreamName = readStreamName(body, problems);
  const list = body.Records;
  const records: Buffer[] = [];
  let bytes = 0;
  if (list === undefined || list === null) {
    problems.push(notNull('records'));
  } else if (!Array.isArray(list)) {
    throw serializationError('Records must be a list');
  } else if (list.length > MAX_BATCH_RECORDS) {
    problems.push(
      `Value '[${list.length} records]' at 'records' failed to satisfy constraint: ` +
        `Member must have length less than or equal to ${MAX_BATCH_RECORDS}`,
    );
  } else if (list.length === 0) {
    problems.push(
      "Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
  } else {
    for (let i = 0; i < list.length; i++) {
      const data = readData(list[i], `records.${i + 1}.member.data`, problems);
      if (data) {
        records.push(data);
        bytes += data.length;
      }
    }
  }
  if (problems.length > 0) throw validationError(problems);
  if (bytes > MAX_BATCH_BYTES)
    throw new FirehoseApiError('InvalidArgumentException', 'Records size exceeds 4 MB limit');
  return { deliveryStreamName, records, bytes };
}

export function parseDescribe(body: Record<string, unknown>): string {
  const problems: string[] = [];
  const name = readStreamName(body, problems);
  if (problems.length > 0) throw validationError(problems);
  return name;
}

export interface ListInput {
  limit: number;
  exclusiveStart: string | undefined;
}

export function parseList(body: Record<string, unknown>): ListInput {
  const { Limit, ExclusiveStartDeliveryStreamName } = body;
  if (Limit !== undefined && Limit !== null) {
    if (typeof Limit !== 'number' || !Number.isInteger(Limit))
      throw serializationError('Limit must be an integer');
    if (Limit < 1 || Limit > 10000) {
      throw validationError([
        `Value '${Limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000`,
      ]);
    }
  }
  if (
    ExclusiveStartDeliveryStreamName !== undefined &&
    typeof ExclusiveStartDeliveryStreamName !== 'string'
  ) {
    throw serializationError('ExclusiveStartDeliveryStreamName must be a string');
  }
  return { limit: typeof Limit === 'number' ? Limit : 10, exclusiveStart: ExclusiveStartDeliveryStreamName };
}

/** Parses a request body; an empty body is `{}` as the SDK may send for operations without input. */
export function parseBody(text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new FirehoseApiError('SerializationException', 'Request body is not valid JSON', 400, { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw serializationError('Request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
