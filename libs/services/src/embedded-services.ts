import { EMBEDDED_PORTS, EMBEDDED_S3_CREDENTIALS, type ServiceSettings } from '@detl/config';
import path from 'node:path';
import { postgresIdentity, startEmbeddedPostgresProcess, type PostgresServiceHandle } from './embedded-postgres-process';
import { ownedService } from './home-services';
import { ensureIdleWatchdog, registerServicesClient } from './idle-shutdown';
import { minioIdentity, startMinio, type MinioServiceHandle } from './minio';
import { stopRecordedService } from './managed-process';
import { isLoopbackHost, parseHostPort } from './net';
import { startTemporalDevServer, temporalIdentity, type TemporalServiceHandle } from './temporal-dev-server';

/** Which embedded services sit at the home's own default address rather than one a user named. */
export interface HomeOwnedServices {
  temporal: boolean;
  s3: boolean;
  postgres: boolean;
}

/**
 * The services whose address the environment leaves to detl (no `DETL_TEMPORAL_ADDRESS`,
 * `DETL_DATABASE_URL`, `DETL_S3_ENDPOINT` / `AWS_ACCESS_KEY_ID`): each home runs its own and may
 * move them off the default ports. An address a user (or a parent process) names is used as given.
 */
export function homeOwnedServices(env: NodeJS.ProcessEnv = process.env): HomeOwnedServices {
  const unset = (name: string) => env[name] === undefined || env[name] === '';
  return {
    temporal: unset('DETL_TEMPORAL_ADDRESS'),
    postgres: unset('DETL_DATABASE_URL'),
    s3: unset('DETL_S3_ENDPOINT') && unset('AWS_ACCESS_KEY_ID'),
  };
}

function withUrlPort(value: string, port: number): string {
  const url = new URL(value);
  url.port = String(port);
  // URL keeps a trailing slash on a bare origin; S3 endpoints are written without one.
  return url.pathname === '/' && !value.endsWith('/') ? url.toString().slice(0, -1) : url.toString();
}

/**
 * The settings with each home-owned service's address replaced by the port this home's running
 * service was recorded on. A service that is home-owned but not running here is an error: the
 * default port may belong to another home.
 * @throws Error naming the home and how to start its services.
 */
export function resolveHomeServices(settings: ServiceSettings, owned: HomeOwnedServices = homeOwnedServices()): ServiceSettings {
  let resolved = settings;
  const missing: string[] = [];
  if (owned.temporal && isLoopbackHost(parseHostPort(settings.temporal.address).host)) {
    const record = ownedService(settings.home, temporalIdentity(settings.home));
    if (record === null) missing.push('Temporal');
    else resolved = { ...resolved, temporal: { ...resolved.temporal, address: `${parseHostPort(settings.temporal.address).host}:${record.port}` } };
  }
  if (owned.postgres && postgresPort(settings.databaseUrl) !== null) {
    const record = ownedService(settings.home, postgresIdentity(path.join(settings.home, 'pglite')));
    if (record === null) missing.push('PostgreSQL');
    else resolved = { ...resolved, databaseUrl: withUrlPort(settings.databaseUrl, record.port) };
  }
  const endpoint = settings.s3.endpoint;
  if (owned.s3 && endpoint !== undefined && s3Port(endpoint) !== null) {
    const record = ownedService(settings.home, minioIdentity(path.join(settings.home, 'minio')));
    if (record === null) missing.push('MinIO');
    else resolved = { ...resolved, s3: { ...resolved.s3, endpoint: withUrlPort(endpoint, record.port) } };
  }
  if (missing.length > 0) {
    throw new Error(
      `the embedded ${missing.join(', ')} of ${settings.home} ${missing.length === 1 ? 'is' : 'are'} not running; start them with \`detl services start\` (or run \`detl worker\`), or name the services with DETL_* variables`,
    );
  }
  return resolved;
}

/** Tuning for {@link startEmbeddedServices}. */
export interface EmbeddedServicesOptions {
  /** Which services this caller needs (each default true); `detl runs list` needs only PostgreSQL. */
  temporal?: boolean;
  s3?: boolean;
  postgres?: boolean;
  /** Temporal Web UI port (default 8233 when Temporal is on its default port, else gRPC port + 1000). */
  temporalUiPort?: number;
  /** MinIO console port (default 9001 when MinIO is on its default port, else S3 port + 1). */
  s3ConsolePort?: number;
  /** Run the Temporal dev server without its Web UI. */
  headless?: boolean;
  /** Leave the services running after this process exits, for later CLI runs and workers to reuse. */
  keepAlive?: boolean;
  /**
   * Leave the services running after this process exits until no detl process has used them for
   * this long (a detached watchdog stops them then; see `idle-shutdown.ts`). Implies `keepAlive`;
   * 0 or absent keeps the plain behaviour.
   */
  idleTimeoutMs?: number;
  /**
   * Services whose address is only the home's preferred default ({@link homeOwnedServices}): only
   * this home's own recorded server is reused, and it moves to free ports when the defaults are
   * taken. Default: none, i.e. every address is used as given and whatever answers there is reused.
   */
  homeOwned?: Partial<HomeOwnedServices>;
  readyTimeoutMs?: number;
}

/** The embedded services; a field is null when not asked for or when the settings point at a real (non-loopback) service. */
export interface EmbeddedServices {
  temporal: TemporalServiceHandle | null;
  s3: MinioServiceHandle | null;
  postgres: PostgresServiceHandle | null;
  /** The settings with the addresses the services actually listen on (home-owned ones may have moved). */
  settings: ServiceSettings;
  /**
   * Stops what was started here, in parallel; reused services are left alone. With
   * `idleTimeoutMs`, only releases this process's claim: the idle watchdog stops them later.
   */
  stop(): Promise<void>;
}

/**
 * Whether any of the services the settings name is an embedded one (on a loopback address), i.e.
 * whether {@link startEmbeddedServices} would start or reuse anything.
 */
export function usesEmbeddedServices(settings: ServiceSettings): boolean {
  return (
    isLoopbackHost(parseHostPort(settings.temporal.address).host) ||
    (settings.s3.endpoint !== undefined && s3Port(settings.s3.endpoint) !== null) ||
    postgresPort(settings.databaseUrl) !== null
  );
}

function s3Port(endpoint: string): { host: string; port: number } | null {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) return null;
  return { host: url.hostname === 'localhost' ? '127.0.0.1' : url.hostname, port: Number(url.port || 80) };
}

function postgresPort(databaseUrl: string): number | null {
  const url = new URL(databaseUrl);
  return isLoopbackHost(url.hostname) ? Number(url.port || 5432) : null;
}

/**
 * Starts (or reuses) the embedded Temporal dev server, MinIO and PGlite PostgreSQL that the settings
 * point at, all in parallel under `settings.home`. A service whose settings name a non-loopback host
 * is someone else's real deployment and is not touched.
 * @throws the first start error, after stopping whatever did start, so a failed start leaves nothing behind.
 */
export async function startEmbeddedServices(settings: ServiceSettings, options: EmbeddedServicesOptions = {}): Promise<EmbeddedServices> {
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  const outlivesCaller = options.keepAlive === true || idleTimeoutMs > 0;
  const common = { home: settings.home, keepAlive: outlivesCaller, readyTimeoutMs: options.readyTimeoutMs };
  // Registered before anything starts, so a watchdog of an earlier command cannot stop the
  // services between their start (or reuse) and this process using them.
  const releaseClient = idleTimeoutMs > 0 ? registerServicesClient(settings.home) : () => undefined;
  const owned = options.homeOwned ?? {};

  const temporalAddress = parseHostPort(settings.temporal.address);
  const temporal =
    options.temporal !== false && isLoopbackHost(temporalAddress.host)
    ? startTemporalDevServer({
        ...common,
        port: temporalAddress.port,
        uiPort:
          options.temporalUiPort ?? (temporalAddress.port === EMBEDDED_PORTS.temporal ? EMBEDDED_PORTS.temporalUi : temporalAddress.port + 1000),
        namespace: settings.temporal.namespace,
        headless: options.headless,
        homeOwned: owned.temporal === true,
      })
    : Promise.resolve(null);

  const s3Address = options.s3 === false || settings.s3.endpoint === undefined ? null : s3Port(settings.s3.endpoint);
  const s3 =
    s3Address === null
      ? Promise.resolve(null)
      : startMinio({
          ...common,
          host: s3Address.host,
          port: s3Address.port,
          consolePort: options.s3ConsolePort ?? (s3Address.port === EMBEDDED_PORTS.s3 ? EMBEDDED_PORTS.s3Console : s3Address.port + 1),
          credentials: {
            accessKeyId: settings.s3.accessKeyId ?? EMBEDDED_S3_CREDENTIALS.accessKeyId,
            secretAccessKey: settings.s3.secretAccessKey ?? EMBEDDED_S3_CREDENTIALS.secretAccessKey,
          },
          homeOwned: owned.s3 === true,
        });

  const pgPort = options.postgres === false ? null : postgresPort(settings.databaseUrl);
  const postgres = pgPort === null ? Promise.resolve(null) : startEmbeddedPostgresProcess({ ...common, port: pgPort, databaseUrl: settings.databaseUrl, homeOwned: owned.postgres === true });

  const [t, s, p] = await Promise.allSettled([temporal, s3, postgres]);
  const started = [t, s, p].flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
  const stopStarted = async () => {
    await Promise.all(started.map((handle) => handle.stop()));
  };
  const failures = [t, s, p].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    releaseClient();
    await stopStarted();
    const first = failures[0];
    if (failures.length === 1) throw first;
    throw new AggregateError(failures, `${failures.length} embedded services failed to start: ${failures.map((f) => (f as Error).message).join(' | ')}`);
  }
  let stop = stopStarted;
  if (idleTimeoutMs > 0) {
    try {
      await ensureIdleWatchdog(settings.home, idleTimeoutMs);
    } catch (error) {
      releaseClient();
      await stopStarted();
      throw error;
    }
    stop = async () => releaseClient();
  }
  const value = <T>(r: PromiseSettledResult<T>): T => (r as PromiseFulfilledResult<T>).value;
  const [temporalHandle, s3Handle, postgresHandle] = [value(t), value(s), value(p)];
  const actual: ServiceSettings = {
    ...settings,
    temporal: temporalHandle ? { ...settings.temporal, address: temporalHandle.address } : settings.temporal,
    databaseUrl: postgresHandle?.databaseUrl ?? settings.databaseUrl,
    s3: s3Handle ? { ...settings.s3, endpoint: s3Handle.endpoint } : settings.s3,
  };
  return { temporal: temporalHandle, s3: s3Handle, postgres: postgresHandle, settings: actual, stop };
}

/**
 * Stops the embedded services recorded under `home` by earlier processes (started with
 * `keepAlive`), e.g. for a `detl services stop` command.
 * @returns the names of the services that were running and are now stopped.
 */
export async function stopEmbeddedServices(home: string): Promise<string[]> {
  // Command-line fragments that identify each service, so a recycled pid is never signalled.
  const markers: Record<string, string> = { temporal: 'start-dev', minio: 'minio', postgres: 'embedded-postgres-main' };
  const stopped = await Promise.all(Object.entries(markers).map(async ([name, marker]) => ((await stopRecordedService(home, name, marker)) ? [name] : [])));
  return stopped.flat();
}
