import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GetSecretValueRequest, GetSecretValueResponse } from '@aws-sdk/client-secrets-manager';

/**
 * A Secrets Manager stand-in for the aws-mode harness: GetSecretValue over the service's JSON 1.1
 * protocol (`X-Amz-Target: secretsmanager.GetSecretValue`), so `@aws-sdk/client-secrets-manager`
 * inside a bundle reaches it through `AWS_ENDPOINT_URL_SECRETS_MANAGER` unchanged. It lives with the
 * tests, not in local/: nothing the local stack runs reads a secret (local mode connects to
 * endpoints.json `totesys`, the local Data API takes any secret ARN); only the deployable bundles do.
 */

export interface LocalSecret {
  /** The secret's ARN, as the template gives it to the function. */
  arn: string;
  /** What GetSecretValue returns as SecretString (the extract's RDS shape is JSON text). */
  value: string;
}

export interface SecretsManagerStandIn {
  url: string;
  /** Every SecretId asked for, found or not, in order. */
  requests(): string[];
  close(): Promise<void>;
}

/** The error shape of the JSON protocol: the SDK maps `__type` to its exception class. */
function awsError(res: http.ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ __type: type, message, Message: message }));
}

export async function startSecretsManager(secrets: LocalSecret[]): Promise<SecretsManagerStandIn> {
  const created = new Date();
  // Secrets Manager takes the ARN or the name as SecretId.
  const byId = new Map<string, LocalSecret & { name: string; versionId: string }>();
  for (const s of secrets) {
    const name = s.arn.split(':secret:')[1];
    if (!name) throw new Error(`${s.arn} is not a Secrets Manager secret ARN`);
    const entry = { ...s, name, versionId: crypto.randomUUID() };
    byId.set(s.arn, entry);
    byId.set(name, entry);
  }
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = target.startsWith('secretsmanager.') ? target.slice('secretsmanager.'.length) : '';
      if (req.method !== 'POST' || operation !== 'GetSecretValue') {
        awsError(
          res,
          400,
          'UnknownOperationException',
          `this stand-in answers GetSecretValue only, not ${target}`,
        );
        return;
      }
      let input: GetSecretValueRequest;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as GetSecretValueRequest;
      } catch {
        awsError(res, 400, 'SerializationException', 'the request body is not JSON');
        return;
      }
      if (typeof input.SecretId !== 'string' || input.SecretId.length === 0) {
        awsError(res, 400, 'InvalidParameterException', 'SecretId is required');
        return;
      }
      asked.push(input.SecretId);
      const secret = byId.get(input.SecretId);
      if (!secret) {
        awsError(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
        return;
      }
      const out: Omit<GetSecretValueResponse, 'CreatedDate'> & { CreatedDate: number } = {
        ARN: secret.arn,
        Name: secret.name,
        VersionId: secret.versionId,
        SecretString: secret.value,
        VersionStages: ['AWSCURRENT'],
        // The JSON protocol sends timestamps as epoch seconds.
        CreatedDate: created.getTime() / 1000,
      };
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => [...asked],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
