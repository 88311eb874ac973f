import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { isPortAccepting } from './net';
import { choosePort, ownedService, portFromArguments, type ServiceIdentity } from './home-services';
import { launchService, PortInUseError, reusedService, ServiceStartError, withStartLock, type ServiceHandle } from './managed-process';
import { resolveToolBinary } from './tool-binary';

/** Root credentials of a MinIO server (also the S3 access key pair clients use). */
export interface MinioCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Where and how to run `minio server`. */
export interface MinioOptions {
  /** Objects go to `<home>/minio` unless `dataDir` says otherwise; log and pid under `<home>`. */
  home: string;
  dataDir?: string;
  /** Loopback by default. */
  host?: string;
  port: number;
  consolePort: number;
  /** MinIO requires a secret of at least 8 characters. */
  credentials: MinioCredentials;
  /** Path of the `minio` binary; {@link resolveToolBinary} otherwise. */
  binary?: string;
  readyTimeoutMs?: number;
  /** Leave the server running after this process exits. */
  keepAlive?: boolean;
  /**
   * `port` and `consolePort` are only this home's preferred ports: reuse only the MinIO this home
   * recorded (started on its data folder), and start on free ports when the preferred ones are taken.
   */
  homeOwned?: boolean;
}

/** How the MinIO of a data folder is recognised: its command line names that folder. */
export function minioIdentity(dataDir: string): ServiceIdentity {
  return { name: 'minio', marker: 'minio', dataPath: dataDir, portFromArguments: portFromArguments.address };
}

/** A MinIO server ready for S3 requests. */
export interface MinioServiceHandle extends ServiceHandle {
  /** `http://host:port`, the S3 endpoint. */
  readonly endpoint: string;
  /** Console port, when known (started here or recorded by this home). */
  readonly consolePort?: number;
}

async function isHealthy(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** Whether the server at `endpoint` accepts these credentials (a signed ListBuckets succeeds). */
async function acceptsCredentials(endpoint: string, credentials: MinioCredentials): Promise<boolean> {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
  try {
    await client.send(new ListBucketsCommand({}));
    return true;
  } catch {
    return false;
  } finally {
    client.destroy();
  }
}

/**
 * Starts `minio server <home>/minio`, or reuses a MinIO that already answers on the port with the
 * same credentials. Ready when `/minio/health/ready` answers 200.
 * @throws PortInUseError when the port belongs to some other program, or to a MinIO with other
 * credentials (which would fail every later request with AccessDenied).
 * @throws MissingBinaryError when no `minio` binary is found.
 * @throws ServiceStartError when the server exits or is not ready in time.
 */
export async function startMinio(options: MinioOptions): Promise<MinioServiceHandle> {
  return withStartLock(options.home, 'minio', (options.readyTimeoutMs ?? 30_000) + 30_000, () => startMinioUnlocked(options));
}

async function startMinioUnlocked(options: MinioOptions): Promise<MinioServiceHandle> {
  if (options.homeOwned !== true) return startOnNamedPort(options);
  const host = options.host ?? '127.0.0.1';
  const dataDir = options.dataDir ?? path.join(options.home, 'minio');
  const owned = ownedService(options.home, minioIdentity(dataDir));
  if (owned !== null) {
    const endpoint = `http://${host}:${owned.port}`;
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    while (!(await isHealthy(endpoint))) {
      if (Date.now() > deadline) throw new Error(`the MinIO of ${options.home} (pid ${owned.pid}) does not answer on ${endpoint}; stop it with detl services stop`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return { ...reusedService('minio'), endpoint, consolePort: owned.extraPorts['console'] };
  }
  // A port taken between choosing and binding makes MinIO exit early: choose again.
  for (let attempt = 1; ; attempt++) {
    const port = await choosePort(host, options.port);
    const consolePort = await choosePort(host, options.consolePort, [port]);
    try {
      return await launchMinio(options, host, port, consolePort);
    } catch (error) {
      if (!(error instanceof ServiceStartError) || attempt >= 3 || !(await isPortAccepting(host, port))) throw error;
    }
  }
}

async function startOnNamedPort(options: MinioOptions): Promise<MinioServiceHandle> {
  const host = options.host ?? '127.0.0.1';
  const endpoint = `http://${host}:${options.port}`;

  if (await isPortAccepting(host, options.port)) {
    if (!(await isHealthy(endpoint))) {
      throw new PortInUseError('MinIO server', host, options.port, 'Stop that program or set DETL_S3_ENDPOINT to a free port or a real S3 server.');
    }
    if (!(await acceptsCredentials(endpoint, options.credentials))) {
      throw new PortInUseError(
        'MinIO server for these credentials',
        host,
        options.port,
        `A MinIO there rejects access key "${options.credentials.accessKeyId}"; stop it or set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to match.`,
      );
    }
    return { ...reusedService('minio'), endpoint };
  }
  if (await isPortAccepting(host, options.consolePort)) {
    throw new PortInUseError('MinIO console', host, options.consolePort, 'Stop that program or choose another console port.');
  }
  return launchMinio(options, host, options.port, options.consolePort).catch(async (error: unknown) => {
    // Another process started it at the same moment and won the port.
    if (error instanceof ServiceStartError && (await isHealthy(endpoint)) && (await acceptsCredentials(endpoint, options.credentials))) {
      return { ...reusedService('minio'), endpoint };
    }
    throw error;
  });
}

async function launchMinio(options: MinioOptions, host: string, port: number, consolePort: number): Promise<MinioServiceHandle> {
  const endpoint = `http://${host}:${port}`;
  const binary = options.binary ?? resolveToolBinary('minio');
  const dataDir = options.dataDir ?? path.join(options.home, 'minio');
  mkdirSync(dataDir, { recursive: true });
  const handle = await launchService({
    name: 'minio',
    home: options.home,
    command: binary,
    args: ['server', dataDir, '--address', `${host}:${port}`, '--console-address', `${host}:${consolePort}`, '--quiet'],
    env: {
      MINIO_ROOT_USER: options.credentials.accessKeyId,
      MINIO_ROOT_PASSWORD: options.credentials.secretAccessKey,
      // The machine may have no route out; MinIO would otherwise keep trying to phone home.
      MINIO_UPDATE: 'off',
      MINIO_CALLHOME_ENABLE: 'off',
    },
    isReady: () => isHealthy(endpoint),
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
    keepAlive: options.keepAlive,
    record: { host, port, extraPorts: { console: consolePort }, dataPath: dataDir },
  });
  return { ...handle, endpoint, consolePort };
}
