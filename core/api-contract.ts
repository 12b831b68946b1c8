/**
 * The HTTP contract of `POST /invoices` and of every error answer (docs/api.md). The API builds its
 * answers from these types (api/ingest.ts, api/errors.ts), the producer reads them
 * (producer/client.ts), and every fake API in the tests answers with them, so a field renamed on one
 * side fails to compile on the other instead of failing in production.
 */

/** 202: every line of the request is on the stream. */
export interface IngestAccepted {
  /** Lines written to the stream: all of the request's. */
  accepted: number;
  /** Distinct invoices among them. */
  invoices: number;
  /** The instant stamped on every line of the request. */
  acceptedAt: string;
}

/** A line the API refused, by its 0-based position in the request (NDJSON: among non-blank lines). */
export interface InvalidLine {
  index: number;
  reason: string;
}

export type ApiErrorCode =
  | 'bad_request'
  | 'invalid_lines'
  | 'not_found'
  | 'unauthorized'
  | 'payload_too_large'
  | 'too_many_lines'
  | 'unsupported_media_type'
  | 'stream_unavailable'
  | 'internal';

/** Every 4xx and 5xx answer of the API. */
export interface ApiErrorBody {
  error: ApiErrorCode;
  /** For a person; 5xx say only `internal error`. */
  message: string;
  /**
   * 400 `invalid_lines`: every bad line of the request, by index. Nothing of the request was
   * accepted; the lines not named here are valid and go again on their own.
   */
  invalid?: InvalidLine[];
}

/** What an error answer carries besides its code and message. */
export type ApiErrorDetails = Omit<ApiErrorBody, 'error' | 'message'>;

/**
 * An error body as a client receives it: anything in front of the API (API Gateway's own 403 and
 * 429, a proxy) may answer in another shape, so every field is checked before it is trusted.
 */
export function readErrorBody(json: unknown): Partial<ApiErrorBody> {
  if (typeof json !== 'object' || json === null) return {};
  const o = json as Record<string, unknown>;
  const body: Partial<ApiErrorBody> = {};
  if (typeof o.error === 'string') body.error = o.error as ApiErrorCode;
  if (typeof o.message === 'string') body.message = o.message;
  if (Array.isArray(o.invalid)) {
    body.invalid = o.invalid.filter(
      (i): i is InvalidLine =>
        typeof i === 'object' &&
        i !== null &&
        Number.isInteger((i as InvalidLine).index) &&
        typeof (i as InvalidLine).reason === 'string',
    );
  }
  return body;
}
