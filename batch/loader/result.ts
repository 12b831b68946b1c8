import type { ManifestRow } from './manifest.ts';
import type { ObjectRef } from './objects.ts';

export type LoadStatus = 'loaded' | 'quarantined' | 'failed' | 'skipped';

/** What became of one object: the loader's answer for each object it was asked about. */
export interface LoadResult {
  key: string;
  etag: string;
  status: LoadStatus;
  /** Why it was skipped / failed / quarantined. */
  detail?: string;
  rowsRead?: number;
  rowsLoaded?: number;
  rowsNew?: number;
  rowsRejected?: number;
  extraColumns?: string[];
  ms: number;
}

const COUNTS = {
  rowsRead: 'rows_read',
  rowsLoaded: 'rows_loaded',
  rowsNew: 'rows_new',
  rowsRejected: 'rows_rejected',
} as const;

/** The result, with the counts of the manifest row when there is one; `detail` over the row's error. */
export function resultOf(
  ref: Pick<ObjectRef, 'key' | 'etag'>,
  status: LoadStatus,
  started: number,
  row?: ManifestRow,
  detail?: string,
): LoadResult {
  const out: LoadResult = {
    key: ref.key,
    etag: ref.etag,
    status,
    ms: Math.round(performance.now() - started),
  };
  const text = detail ?? row?.error ?? undefined;
  if (text) out.detail = text;
  for (const [field, column] of Object.entries(COUNTS) as Array<[keyof typeof COUNTS, keyof ManifestRow]>) {
    const v = row?.[column];
    if (v !== null && v !== undefined) out[field] = Number(v);
  }
  if (row?.extra_columns) out.extraColumns = JSON.parse(row.extra_columns) as string[];
  return out;
}
