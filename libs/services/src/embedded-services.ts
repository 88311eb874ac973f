import { EMBEDDED_PORTS, EMBEDDED_S3_CREDENTIALS, type ServiceSettings } from '@detl/config';
import { startEmbeddedPostgresProcess, type PostgresServiceHandle } from './embedded-postgres-process';
import { startMinio, type MinioServiceHandle } from './minio';
import { stopRecordedService } from './managed-process';
import { isLoopbackHost, parseHostPort } from './net';
import { startTemporalDevServer, type TemporalServiceHandle } from './temporal-dev-server';

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
  readyTimeoutMs?: number;
}

/** The embedded services; a field is null when not asked for or when the settings point at a real (non-loopback) service. */
export interface EmbeddedServices {
  temporal: TemporalServiceHandle | null;
  s3: MinioServiceHandle | null;
  postgres: PostgresServiceHandle | null;
  /** Stops what was started here, in parallel; reused services are left alone. */
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
  const common = { home: settings.home, keepAlive: options.keepAlive, readyTimeoutMs: options.readyTimeoutMs };

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
        });

  const pgPort = options.postgres === false ? null : postgresPort(settings.databaseUrl);
  const postgres = pgPort === null ? Promise.resolve(null) : startEmbeddedPostgresProcess({ ...common, port: pgPort, databaseUrl: settings.databaseUrl });

  const [t, s, p] = await Promise.allSettled([temporal, s3, postgres]);
  const started = [t, s, p].flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
  const stop = async () => {
    await Promise.all(started.map((handle) => handle.stop()));
  };
  const failures = [t, s, p].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    await stop();
    const first = failures[0];
    if (failures.length === 1) throw first;
    throw new AggregateError(failures, `${failures.length} embedded services failed to start: ${failures.map((f) => (f as Error).message).join(' | ')}`);
  }
  const value = <T>(r: PromiseSettledResult<T>): T => (r as PromiseFulfilledResult<T>).value;
  return { temporal: value(t), s3: value(s), postgres: value(p), stop };
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
