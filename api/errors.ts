import type { ErrorRequestHandler } from 'express';
import { KinesisWriteError } from '#adapters/kinesis-writer';
import type { Logger } from '#adapters/logger';
import type { ApiErrorBody, ApiErrorCode, ApiErrorDetails } from '#core/api-contract';
import { InvalidCursorError } from '#core/serving';

/** An error whose message is meant for the caller (4xx, or a 503 the caller can act on). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: ApiErrorDetails,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string, details?: ApiErrorDetails) =>
  new HttpError(400, 'bad_request', message, details);
export const notFound = (message: string) => new HttpError(404, 'not_found', message);

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
  length?: number;
  charset?: string;
}

/** Maps any error to a status and a body that is safe to show; the only place that does it. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof InvalidCursorError) return badRequest(err.message);
  if (err instanceof KinesisWriteError) {
    return new HttpError(
      503,
      'stream_unavailable',
      'the stream did not accept every line; resend the whole request (lines are idempotent by invoiceNo and lineNo)',
      undefined,
      { cause: err },
    );
  }
  const e = err as BodyParserError;
  switch (e?.type) {
    case 'entity.too.large':
      return new HttpError(413, 'payload_too_large', `request body is larger than ${e.limit} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported_media_type', 'request body must be UTF-8');
    case 'request.aborted':
    case 'request.size.invalid':
      return badRequest('request body is incomplete');
  }
  // A compressed body that does not inflate (truncated gzip, bad brotli) is the client's fault.
  if (
    typeof (err as { code?: unknown })?.code === 'string' &&
    (err as { code: string }).code.startsWith('Z_')
  ) {
    return badRequest('request body could not be decompressed (check Content-Encoding)');
  }
  return new HttpError(500, 'internal', 'internal error', undefined, { cause: err });
}

/** 5xx get a generic message and the detail goes to the log; nothing internal reaches the client. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const http = toHttpError(err);
    if (http.status >= 500) {
      logger.error({ err, method: req.method, path: req.path, status: http.status }, 'request failed');
    } else {
      logger.debug(
        { method: req.method, path: req.path, status: http.status, message: http.message },
        'request refused',
      );
    }
    if (res.headersSent) return;
    if (http.status === 503) res.set('Retry-After', '1');
    const body: ApiErrorBody = { error: http.code, message: http.message, ...http.details };
    res.status(http.status).json(body);
  };
}
