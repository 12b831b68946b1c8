import type { Logger } from '#adapters/logger';
import { errorMessage } from '#core/resilience';
import type { LineSink } from '#core/serving';

/** Default spacing of one shard's progress writes (ConsumerDeps.progressEveryMs). */
export const PROGRESS_EVERY_MS = 1000;

interface ShardState {
  /** When the last write was sent (ms, the timer clock). */
  sentAt: number;
  /** The highest mark not written yet. */
  pending?: string;
  timer?: NodeJS.Timeout;
  inFlight: boolean;
}

/**
 * Writes each shard's progress mark (docs/dynamodb.md) at most once per `everyMs`: the first mark
 * at once, later ones as one write of the highest mark when the interval has passed. The mark is a
 * hint (a redelivery below it is skipped; without it the redelivery is still idempotent), so a
 * mark that is never written costs only work, never a line. At a steady trickle of small batches
 * this takes an UpdateItem per batch (a write unit, a DynamoDB call) off the stream path.
 * Writes of one shard never overlap, so they reach the store in order.
 */
export class ProgressSaver {
  private readonly shards = new Map<string, ShardState>();

  constructor(
    private readonly sink: Pick<LineSink, 'setShardProgress'>,
    private readonly logger: Logger,
    private readonly everyMs = PROGRESS_EVERY_MS,
  ) {}

  save(shardId: string, mark: string): void {
    let s = this.shards.get(shardId);
    if (!s) {
      s = { sentAt: Number.NEGATIVE_INFINITY, inFlight: false };
      this.shards.set(shardId, s);
    }
    if (s.pending === undefined || mark > s.pending) s.pending = mark;
    this.flush(shardId, s);
  }

  private flush(shardId: string, s: ShardState): void {
    if (s.pending === undefined || s.inFlight || s.timer) return;
    const wait = s.sentAt + this.everyMs - performance.now();
    if (wait > 0) {
      s.timer = setTimeout(() => {
        s.timer = undefined;
        this.flush(shardId, s);
      }, wait);
      s.timer.unref?.();
      return;
    }
    const mark = s.pending;
    s.pending = undefined;
    s.inFlight = true;
    s.sentAt = performance.now();
    this.sink
      .setShardProgress(shardId, mark)
      .catch((err: unknown) => {
        this.logger.warn({ shardId, err: errorMessage(err) }, 'shard progress not saved');
      })
      .finally(() => {
        s.inFlight = false;
        this.flush(shardId, s);
      });
  }
}
