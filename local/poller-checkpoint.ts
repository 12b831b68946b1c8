import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * One small JSON file per shard holding the last fully processed sequence number. Written to a temp
 * file and renamed over the old one, so a crash leaves either the previous or the new checkpoint,
 * never a torn one. No fsync: the poller guards against process crashes, and a checkpoint that is
 * older than the truth only means redelivery, which consumers are built for.
 */
export interface Checkpoint {
  shardId: string;
  sequenceNumber: string;
  updatedAt: string;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export class CheckpointStore {
  constructor(
    readonly dir: string,
    readonly streamName: string,
  ) {}

  file(shardId: string): string {
    return path.join(this.dir, `${this.streamName}.${shardId}.checkpoint.json`);
  }

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
  }

  async load(shardId: string): Promise<string | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.file(shardId), 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CheckpointError(`cannot read checkpoint ${this.file(shardId)}`, { cause });
    }
    try {
      const parsed = JSON.parse(text) as Partial<Checkpoint>;
      if (typeof parsed.sequenceNumber !== 'string' || !/^\d+$/.test(parsed.sequenceNumber)) {
        throw new Error('sequenceNumber missing or not numeric');
      }
      return parsed.sequenceNumber;
    } catch (cause) {
      throw new CheckpointError(`corrupt checkpoint ${this.file(shardId)}`, { cause });
    }
  }

  async save(shardId: string, sequenceNumber: string): Promise<void> {
    const file = this.file(shardId);
    const tmp = `${file}.${process.pid}.tmp`;
    const body: Checkpoint = { shardId, sequenceNumber, updatedAt: new Date().toISOString() };
    try {
      await fs.writeFile(tmp, JSON.stringify(body));
      await fs.rename(tmp, file);
    } catch (cause) {
      throw new CheckpointError(`cannot write checkpoint ${file}`, { cause });
    }
  }
}
