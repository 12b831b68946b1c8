import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ListDeliveryStreamsCommand } from '@aws-sdk/client-firehose';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { createClients } from '#adapters/clients';
import { errorMessage } from '#core/resilience';
import type { Endpoints } from './endpoints.ts';

export type ServiceName = 'kinesis' | 'dynamodb' | 's3' | 'firehose' | 'postgres' | 'api' | 'consumer';

export interface ServiceHealth {
  service: ServiceName;
  endpoint: string;
  ok: boolean;
  ms: number;
  detail: string;
}

async function timed(
  service: ServiceName,
  endpoint: string,
  probe: () => Promise<string>,
): Promise<ServiceHealth> {
  const started = performance.now();
  try {
    const detail = await probe();
    return { service, endpoint, ok: true, ms: Math.round(performance.now() - started), detail };
  } catch (err) {
    const detail = errorMessage(err, { name: false });
    return { service, endpoint, ok: false, ms: Math.round(performance.now() - started), detail };
  }
}

/** Probes every service listed in endpoints.json with one cheap real call each. */
export async function checkHealth(endpoints: Endpoints, timeoutMs = 3000): Promise<ServiceHealth[]> {
  const clients = createClients({ region: endpoints.region, endpoints, local: true, maxAttempts: 1 });
  const signal = () => ({ abortSignal: AbortSignal.timeout(timeoutMs) });
  try {
    const probes: Array<Promise<ServiceHealth>> = [
      timed('kinesis', endpoints.kinesis, async () => {
        const out = await clients.kinesis.send(new ListStreamsCommand({}), signal());
        return `streams: ${(out.StreamNames ?? []).join(', ') || 'none'}`;
      }),
      timed('dynamodb', endpoints.dynamodb, async () => {
        const out = await clients.dynamodb.send(new ListTablesCommand({}), signal());
        return `tables: ${(out.TableNames ?? []).join(', ') || 'none'}`;
      }),
      timed('s3', endpoints.s3, async () => {
        await clients.s3.send(new HeadBucketCommand({ Bucket: endpoints.names.bucket }), signal());
        return `bucket: ${endpoints.names.bucket}`;
      }),
      timed('firehose', endpoints.firehose, async () => {
        const out = await clients.firehose.send(new ListDeliveryStreamsCommand({}), signal());
        return `delivery streams: ${(out.DeliveryStreamNames ?? []).join(', ') || 'none'}`;
      }),
      timed('postgres', redactPassword(endpoints.postgres), async () => {
        const client = new pg.Client({
          connectionString: endpoints.postgres,
          connectionTimeoutMillis: timeoutMs,
        });
        await client.connect();
        try {
          const res = await client.query<{ v: string }>('select version() as v');
          return (res.rows[0]?.v ?? '').split(' ').slice(0, 2).join(' ');
        } finally {
          await client.end();
        }
      }),
    ];
    let consumer: ServiceHealth | undefined;
    if (endpoints.api) {
      const api = endpoints.api;
      probes.push(
        timed('api', api, async () => {
          const started = performance.now();
          const res = await fetch(`${api}/health`, { signal: AbortSignal.timeout(timeoutMs) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const body = (await res.json().catch(() => ({}))) as { consumer?: unknown };
          consumer = consumerHealth(api, body.consumer, Math.round(performance.now() - started));
          return `HTTP ${res.status}`;
        }),
      );
    }
    const health = await Promise.all(probes);
    return consumer ? [...health, consumer] : health;
  } finally {
    clients.destroy();
  }
}

/**
 * The stream consumer, as `npm start`'s API reports it in /health (cli/consumer-process.ts): up only
 * while it runs; restarting after a crash, or given up after repeated ones, it is DOWN.
 */
function consumerHealth(api: string, reported: unknown, ms: number): ServiceHealth | undefined {
  if (typeof reported !== 'object' || reported === null) return undefined;
  const c = reported as {
    state?: string;
    pid?: number | null;
    restarts?: number;
    lastExit?: { code: number | null; signal: string | null } | null;
  };
  const exit = c.lastExit ? `, last exit ${c.lastExit.signal ?? `code ${c.lastExit.code}`}` : '';
  const detail = `${c.state ?? 'unknown'}${c.pid ? ` (pid ${c.pid})` : ''}, restarts ${c.restarts ?? 0}${exit}`;
  return { service: 'consumer', endpoint: `${api}/health`, ok: c.state === 'running', ms, detail };
}

export function redactPassword(connectionString: string): string {
  return connectionString.replace(/(postgres(?:ql)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');
}
