import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BatchError } from './errors.ts';

export class SpoolError extends BatchError {
  override name = 'SpoolError';
}

/**
 * Text collected while a file is read (its rejected rows) and replayed into a COPY afterwards. It
 * stays in memory up to `limitBytes`, then moves to a temporary file: a file of nothing but bad
 * rows must not cost memory in proportion to its size.
 */
export class Spool {
  private chunks: string[] = [];
  private bytes = 0;
  private file: { path: string; out: WriteStream } | undefined;
  /** A failed write to the spill file (disk full): reported by readable(), never swallowed. */
  private failure: Error | undefined;
  count = 0;

  constructor(private readonly limitBytes = 8 * 2 ** 20) {}

  add(text: string): void {
    this.count++;
    if (this.file) {
      this.file.out.write(text);
      return;
    }
    this.chunks.push(text);
    this.bytes += text.length;
    if (this.bytes > this.limitBytes) {
      const file = path.join(
        os.tmpdir(),
        `retail-pipeline-spool-${process.pid}-${Date.now()}-${Math.random()}`,
      );
      const out = createWriteStream(file);
      out.on('error', (err) => {
        this.failure ??= err;
      });
      out.write(this.chunks.join(''));
      this.chunks = [];
      this.file = { path: file, out };
    }
  }

  /** The text, in order; the spool is read once. */
  async readable(): Promise<Readable> {
    if (!this.file) {
      const text = this.chunks.join('');
      this.chunks = [];
      return Readable.from([Buffer.from(text, 'utf8')]);
    }
    const { out, path: file } = this.file;
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => {
        const cause = this.failure ?? err;
        if (cause) reject(new SpoolError(`could not spill rejected rows to ${file}`, { cause }));
        else resolve();
      }),
    );
    const stream = createReadStream(file);
    stream.on('close', () => void fs.rm(file, { force: true }));
    return stream;
  }

  /** Drops the text (and its file). */
  async discard(): Promise<void> {
    this.chunks = [];
    if (this.file) {
      const { out, path: file } = this.file;
      this.file = undefined;
      await new Promise<void>((resolve) => out.end(() => resolve()));
      await fs.rm(file, { force: true });
    }
  }
}
