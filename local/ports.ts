import fs from 'node:fs/promises';
import net from 'node:net';

/** Linux's default when /proc does not say (net.ipv4.ip_local_port_range). */
const DEFAULT_EPHEMERAL_LOW = 32_768;
const LOWEST = 10_000;

async function ephemeralLow(): Promise<number> {
  try {
    const low = Number(
      (await fs.readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > LOWEST + 1_000 ? low : DEFAULT_EPHEMERAL_LOW;
  } catch {
    return DEFAULT_EPHEMERAL_LOW;
  }
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A port that is free now, for a server that must be told its port before it binds (PostgreSQL, a
 * pipeline restarted on the same API port). Picked below the kernel's ephemeral range: a port the
 * kernel hands to a `listen(0)` elsewhere (every other test server) comes from that range, so it
 * cannot take this one between the check and the bind (a port-0 probe could lose it, and did:
 * EADDRINUSE when test files ran side by side).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = await ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (await canListen(port, host)) return port;
  }
  throw new Error(`no free port between ${LOWEST} and ${high} on ${host}`);
}
