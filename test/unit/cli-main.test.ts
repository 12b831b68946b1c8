import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QuarantineError } from '#batch/loader/index';
import { main } from '#cli/main';
import { TextEncodingError } from '#core/text-encoding';
import { MalformedRowError, ReplayInputError } from '#producer/replay';

/** What main prints and the exit code it sets when a command throws `err`. */
async function failWith(err: unknown): Promise<{ printed: string; exitCode: number | undefined }> {
  const program = new Command('retail-pipeline').exitOverride();
  program.command('fail').action(() => {
    throw err;
  });
  const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const before = process.exitCode;
  try {
    await main(['node', 'retail-pipeline', 'fail'], program);
    const exitCode = process.exitCode === undefined ? undefined : Number(process.exitCode);
    return { printed: write.mock.calls.map((c) => String(c[0])).join(''), exitCode };
  } finally {
    write.mockRestore();
    process.exitCode = before;
  }
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('cli/main: an error the user can act on is one line, no stack, exit code 1', () => {
  const expected: Array<[string, Error]> = [
    ['ReplayInputError', new ReplayInputError('no file matches data/*.csv')],
    [
      'MalformedRowError',
      new MalformedRowError({
        file: 'data/retail.csv',
        line: 7,
        reason: 'Quantity "x" is not a whole number',
      }),
    ],
    [
      'TextEncodingError',
      new TextEncodingError('data/retail.csv', 4, 'not valid UTF-8 (byte 0xA3 at byte 21)'),
    ],
    ['QuarantineError', new QuarantineError('missing required columns: UnitPrice')],
  ];

  it.each(expected)('%s', async (_, err) => {
    const { printed, exitCode } = await failWith(err);
    expect(printed).toBe(`retail-pipeline: ${err.message}\n`);
    expect(exitCode).toBe(1);
  });

  it('an unexpected error also prints its stack', async () => {
    const { printed, exitCode } = await failWith(new Error('something broke'));
    expect(printed).toMatch(/^retail-pipeline: something broke\n.*\n\s+at /s);
    expect(exitCode).toBe(1);
  });

  it('RP_DEBUG adds the stack to an expected error', async () => {
    vi.stubEnv('RP_DEBUG', '1');
    const { printed } = await failWith(new ReplayInputError('no file matches data/*.csv'));
    expect(printed).toMatch(/^retail-pipeline: no file matches data\/\*\.csv\n.*\n\s+at /s);
  });
});
