/**
 * The Lambda entry files, relative to the repository root. These are the same modules the local mode runs
 * (each exports `handler`), so what is tested locally is what Lambda executes.
 */
export const LAMBDA_ENTRIES = {
  api: 'api/functions/http-api.ts',
  consumer: 'consumers/functions/process-invoice-lines.ts',
  loader: 'batch/functions/load-objects.ts',
  totesysExtract: 'cdc/functions/extract-changes.ts',
  totesysTransform: 'cdc/functions/transform-runs.ts',
  totesysLoad: 'cdc/functions/load-processed.ts',
} as const;

export type LambdaEntryName = keyof typeof LAMBDA_ENTRIES;

/** Metadata key that records on each function which entry file it runs (read by the tests and by humans). */
export const ENTRY_METADATA_KEY = 'retail-pipeline:entry';
