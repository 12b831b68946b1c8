/**
 * The batch loader, by file: orchestrator.ts (createLoader: one object from discovery to its
 * outcome), batches.ts (archive objects found together, in one transaction), scheduler.ts (when objects are tried: sweeps, notify, the timer, cool-downs),
 * attempt.ts (one load, restarted when a way does not fit), strategies/ (one file per way into the
 * star), rows.ts (an object's typed rows), objects.ts (S3: prefixes, listing, reading, staging),
 * manifest.ts (every statement on load_manifest), quarantine.ts, result.ts.
 */

export type { LineTap } from './attempt.ts';
export { ARCHIVE_PREFIX, formatOf, LANDING_PREFIX, loadIdOf, STAGING_PREFIX } from './objects.ts';
export { createLoader, type LoaderHooks, type LoaderOptions } from './orchestrator.ts';
export { QUARANTINE_PREFIX, QuarantineError } from './quarantine.ts';
export type { LoadResult, LoadStatus } from './result.ts';
export { coolDownMs, type Loader, type RetryRule } from './scheduler.ts';
