import { randomUUID } from 'node:crypto';
import type http from 'node:http';

/**
 * The wire of AWS's JSON 1.1 protocol (`X-Amz-Target` operations), which the local Firehose and the
 * local Redshift Data API both speak so the real SDK clients and the AWS CLI talk to them unchanged.
 */
export const AWS_JSON_CONTENT_TYPE = 'application/x-amz-json-1.1';

/** Writes one response: the JSON payload, a request id, and for an error the error type header. */
export function sendAwsJson(
  res: http.ServerResponse,
  status: number,
  payload: unknown,
  opts: { errorType?: string | undefined; close?: boolean } = {},
): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': AWS_JSON_CONTENT_TYPE,
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...(opts.errorType ? { 'x-amzn-errortype': opts.errorType } : {}),
    ...(opts.close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** Reads a request body as text; past `maxBytes` it drops the request and rejects with `tooLarge()`. */
export function readAwsJsonBody(
  req: http.IncomingMessage,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        reject(tooLarge());
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
