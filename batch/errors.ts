/**
 * The batch room's errors share one base class, so a caller (a CLI command, a Lambda entry) can tell
 * a batch failure from anything else with one `instanceof`; each names what went wrong and chains
 * what caused it (`cause`).
 */
export class BatchError extends Error {
  override name = 'BatchError';
}
