import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { isPortAccepting } from './net';
import { choosePort, ownedService, portFromArguments, type ServiceIdentity } from './home-services';
import { launchService, PortInUseError, recordedProcessAlive, reusedService, ServiceStartError, withStartLock, type ServiceHandle } from './managed-process';

const SERVICE_NAME = 'postgres';

/** Where and how to run the embedded PostgreSQL (PGlite over the wire protocol). */
export interface EmbeddedPostgresProcessOptions {
  /** Data in `<home>/pglite` unless `dataDir` says otherwise; log and pid under `<home>`. */
  home: string;
  dataDir?: string;
  port: number;
  /** Connection string used to recognise a PostgreSQL already on the port (default: postgres@127.0.0.1:port). */
  databaseUrl?: string;
  /** Entry script; {@link embeddedPostgresEntry} otherwise. */
  entry?: string;
  readyTimeoutMs?: number;
  /** Leave the server running after this process exits. */
  keepAlive?: boolean;
  /**
   * `port` is only this home's preferred port: reuse only the server this home recorded (started on
   * its data folder), and start on a free port when the preferred one is taken.
   */
  homeOwned?: boolean;
}

/** How the PGlite server of a data folder is recognised: its command line names that folder. */
export function postgresIdentity(dataDir: string): ServiceIdentity {
  return { name: SERVICE_NAME, marker: 'embedded-postgres-main', dataPath: dataDir, portFromArguments: portFromArguments.flag };
}

/** `databaseUrl` with its port replaced. */
function withPort(databaseUrl: string, port: number): string {
  const url = new URL(databaseUrl);
  url.port = String(port);
  return url.toString();
}

/** A PostgreSQL server ready for connections. */
export interface PostgresServiceHandle extends ServiceHandle {
  readonly databaseUrl: string;
}

/** Path of the tracking library's PGlite server entry point (`libs/tracking/src/embedded-postgres-main.ts`). */
export function embeddedPostgresEntry(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tracking/src/embedded-postgres-main.ts');
}

/** Whether a PostgreSQL server answers `SELECT 1` at the connection string. */
export async function postgresAnswers(databaseUrl: string, timeoutMs = 3_000): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: timeoutMs });
  // pg emits 'error' for a connection dropped after connect; without a listener that would crash.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Starts the embedded PostgreSQL (`node --import tsx embedded-postgres-main.ts --data-dir … --port …`),
 * or reuses a PostgreSQL already answering on the port. Ready when the port accepts connections.
 * @throws PortInUseError when the port belongs to some other program.
 * @throws Error when the entry script does not exist.
 * @throws ServiceStartError when the server exits or is not ready in time.
 */
export async function startEmbeddedPostgresProcess(options: EmbeddedPostgresProcessOptions): Promise<PostgresServiceHandle> {
  return withStartLock(options.home, SERVICE_NAME, (options.readyTimeoutMs ?? 60_000) + 30_000, () => startEmbeddedPostgresProcessUnlocked(options));
}

async function startEmbeddedPostgresProcessUnlocked(options: EmbeddedPostgresProcessOptions): Promise<PostgresServiceHandle> {
  if (options.homeOwned !== true) return startOnNamedPort(options);
  const host = '127.0.0.1';
  const base = options.databaseUrl ?? `postgresql://postgres:postgres@${host}:${options.port}/postgres`;
  const dataDir = options.dataDir ?? path.join(options.home, 'pglite');
  const owned = ownedService(options.home, postgresIdentity(dataDir));
  if (owned !== null) {
    // PGlite serves one connection at a time, so a busy server may not answer a probe: the process
    // started on this home's data folder is the proof, and its port accepting is enough.
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    while (!(await isPortAccepting(host, owned.port))) {
      if (Date.now() > deadline) throw new Error(`the PostgreSQL of ${options.home} (pid ${owned.pid}) does not accept connections on port ${owned.port}; stop it with detl services stop`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return { ...reusedService(SERVICE_NAME), databaseUrl: withPort(base, owned.port) };
  }
  for (let attempt = 1; ; attempt++) {
    const port = await choosePort(host, options.port);
    try {
      return await launchPostgres({ ...options, dataDir, port }, withPort(base, port));
    } catch (error) {
      if (!(error instanceof ServiceStartError) || attempt >= 3 || !(await isPortAccepting(host, port))) throw error;
    }
  }
}

async function startOnNamedPort(options: EmbeddedPostgresProcessOptions): Promise<PostgresServiceHandle> {
  const host = '127.0.0.1';
  const databaseUrl = options.databaseUrl ?? `postgresql://postgres:postgres@${host}:${options.port}/postgres`;

  if (await isPortAccepting(host, options.port)) {
    // PGlite serves one connection at a time, so a busy embedded server may not answer the probe;
    // the pid we recorded when starting it identifies it then.
    if ((await postgresAnswers(databaseUrl)) || recordedProcessAlive(options.home, SERVICE_NAME, 'embedded-postgres-main')) {
      return { ...reusedService(SERVICE_NAME), databaseUrl };
    }
    throw new PortInUseError('PostgreSQL server', host, options.port, 'Stop that program or set DETL_DATABASE_URL to a free port or a real PostgreSQL.');
  }
  return launchPostgres(options, databaseUrl).catch(async (error: unknown) => {
    // Another process started it at the same moment and won the port.
    if (error instanceof ServiceStartError && (await postgresAnswers(databaseUrl))) return { ...reusedService(SERVICE_NAME), databaseUrl };
    throw error;
  });
}

async function launchPostgres(options: EmbeddedPostgresProcessOptions, databaseUrl: string): Promise<PostgresServiceHandle> {
  const host = '127.0.0.1';
  const entry = options.entry ?? embeddedPostgresEntry();
  if (!existsSync(entry)) {
    throw new Error(`the embedded PostgreSQL entry point ${entry} does not exist; is the checkout complete?`);
  }
  // Resolved from the entry's own location, so the child finds tsx whatever the caller's cwd.
  const tsxLoader = pathToFileURL(createRequire(entry).resolve('tsx')).href;
  const dataDir = options.dataDir ?? path.join(options.home, 'pglite');
  mkdirSync(dataDir, { recursive: true });

  const handle = await launchService({
    name: SERVICE_NAME,
    home: options.home,
    command: process.execPath,
    args: ['--import', tsxLoader, entry, '--data-dir', dataDir, '--port', String(options.port)],
    isReady: () => isPortAccepting(host, options.port),
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
    keepAlive: options.keepAlive,
    record: { host, port: options.port, extraPorts: {}, dataPath: dataDir },
  });
  return { ...handle, databaseUrl };
}
