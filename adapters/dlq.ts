import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '#core/resilience';
import { mapLimit } from './retry.ts';

/**
 * A stream record that can never succeed whole (undecodable, or some of its lines invalid), with
 * where it came from and why. `data` is always the whole record as it was on the stream.
 */
export interface DeadLetter {
  data: Uint8Array;
  reason: string;
  /**
   * Set when the record was read but some of its lines cannot be stored: each of them, with its
   * 0-based position in the record and its reason (the record's other lines were stored).
   */
  invalidLines?: readonly DeadLine[];
  shardId: string;
  sequenceNumber: string;
  partitionKey?: string;
  /** Seconds since the epoch, as Kinesis reports it. */
  approximateArrivalTimestamp?: number;
  eventSourceARN?: string;
}

export interface DeadLine {
  index: number;
  reason: string;
  /** The line as decoded, so a person can correct it and send it again. */
  line: unknown;
}

/** The on-failure destination port. Throws DeadLetterWriteError when a letter could not be stored. */
export interface DeadLetterSink {
  send(letters: readonly DeadLetter[]): Promise<void>;
}

export class DeadLetterWriteError extends Error {
  constructor(
    message: string,
    readonly failedSequenceNumbers: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DeadLetterWriteError';
  }
}

export interface S3DeadLetterSinkOptions {
  client: S3Client;
  bucket: string;
  prefix?: string;
  clock?: () => Date;
}

/**
 * One JSON object per record (a record with invalid lines gets one letter listing each of them) under `dlq/YYYY/MM/DD/<shardId>/<sequenceNumber>.json` (the day the
 * record reached the stream). The key is deterministic, so a redelivered poison record overwrites
 * its own letter instead of adding a second one.
 */
export class S3DeadLetterSink implements DeadLetterSink {
  constructor(private readonly options: S3DeadLetterSinkOptions) {}

  keyFor(letter: DeadLetter): string {
    const arrived = letter.approximateArrivalTimestamp
      ? new Date(letter.approximateArrivalTimestamp * 1000)
      : (this.options.clock?.() ?? new Date());
    const day = arrived.toISOString().slice(0, 10).replaceAll('-', '/');
    return `${this.options.prefix ?? 'dlq/'}${day}/${letter.shardId}/${letter.sequenceNumber}.json`;
  }

  async send(letters: readonly DeadLetter[]): Promise<void> {
    const failures: { seq: string; err: unknown }[] = [];
    await mapLimit(letters, 8, async (letter) => {
      const body = {
        reason: letter.reason,
        shardId: letter.shardId,
        sequenceNumber: letter.sequenceNumber,
        partitionKey: letter.partitionKey ?? null,
        eventSourceARN: letter.eventSourceARN ?? null,
        approximateArrivalTimestamp: letter.approximateArrivalTimestamp ?? null,
        ...(letter.invalidLines ? { invalidLines: letter.invalidLines } : {}),
        failedAt: (this.options.clock?.() ?? new Date()).toISOString(),
        record: Buffer.from(letter.data).toString('base64'),
      };
      try {
        await this.options.client.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: this.keyFor(letter),
            Body: `${JSON.stringify(body)}\n`,
            ContentType: 'application/json',
          }),
        );
      } catch (err) {
        failures.push({ seq: letter.sequenceNumber, err });
      }
    });
    if (failures.length > 0) {
      throw new DeadLetterWriteError(
        `${failures.length} dead letters not stored: ${errorMessage(failures[0]?.err)}`,
        failures.map((f) => f.seq),
        { cause: failures[0]?.err },
      );
    }
  }
}
