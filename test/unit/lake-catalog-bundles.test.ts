import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../infra/constructs/pipeline-function.ts';
import { LAMBDA_ENTRIES } from '../../infra/entries.ts';

/** The repository files and the packages a bundle of `entry` would pull in (packages left external). */
async function graphOf(entry: string): Promise<{ files: string[]; packages: string[] }> {
  const result = await build({
    entryPoints: [path.join(REPO_ROOT, entry)],
    absWorkingDir: REPO_ROOT,
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  });
  const files = Object.keys(result.metafile.inputs);
  const packages = Object.values(result.metafile.outputs).flatMap((o) =>
    o.imports.filter((i) => i.external).map((i) => i.path),
  );
  return { files, packages };
}

const pullsDuckDb = (g: { files: string[]; packages: string[] }) =>
  g.files.some((f) => /^lake\/query/.test(f)) || g.packages.some((p) => p.startsWith('@duckdb/'));

describe('Lambda bundles and the lake query engine', () => {
  it('the check sees DuckDB where it is imported', async () => {
    expect(pullsDuckDb(await graphOf('lake/query.ts'))).toBe(true);
  });

  it.each(Object.entries(LAMBDA_ENTRIES))(
    '%s (%s) does not import lake/query or @duckdb',
    async (_, entry) => {
      const graph = await graphOf(entry);
      expect(graph.files.length).toBeGreaterThan(1);
      expect(pullsDuckDb(graph)).toBe(false);
    },
  );
});
