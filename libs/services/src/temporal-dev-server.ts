import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { isPortAccepting } from './net';
import { choosePort, ownedService, portFromArguments, type ServiceIdentity } from './home-services';
import { launchService, PortInUseError, reusedService, ServiceStartError, withStartLock, type ServiceHandle } from './managed-process';
import { resolveToolBinary } from './tool-binary';

/** Where and how to run `temporal server start-dev`. */
export interface TemporalDevServerOptions {
  /** Data folder: `<home>/temporal.db`, `<home>/logs/temporal.log`, `<home>/run/temporal.pid`. */
  home: string;
  /** Loopback by default: the dev server has no authentication. */
  host?: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** Skip the Web UI (tests do not need it). */
  headless?: boolean;
  /** Path of the `temporal` binary; {@link resolveToolBinary} otherwise. */
  binary?: string;
  readyTimeoutMs?: number;
  /** Leave the server running after this process exits. */
  keepAlive?: boolean;
  /**
   * `port` and `uiPort` are only this home's preferred ports, not an address a user named: reuse
   * only the server this home recorded, and start on free ports when the preferred ones are taken
   * (by another home's server or anything else), instead of reusing whatever answers there.
   */
  homeOwned?: boolean;
}

/** How the dev server of `home` is recognised: its command line names `<home>/temporal.db`. */
export function temporalIdentity(home: string): ServiceIdentity {
  return { name: 'temporal', marker: 'start-dev', dataPath: path.join(home, 'temporal.db'), portFromArguments: portFromArguments.flag };
}

/** A Temporal frontend ready for clients and workers. */
export interface TemporalServiceHandle extends ServiceHandle {
  /** `host:port` for `Connection.connect` / `NativeConnection.connect`. */
  readonly address: string;
  /** Web UI port, when known (started here or recorded by this home). */
  readonly uiPort?: number;
}

type TemporalProbe = 'ready' | 'namespace-missing' | 'unreachable';

const GRPC_NOT_FOUND = 5;

/** Asks the frontend at `address` whether `namespace` exists. */
export async function probeTemporal(address: string, namespace: string, timeoutMs = 2_000): Promise<TemporalProbe> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: timeoutMs });
    const open = connection;
    // A deadline on the call too: a half-broken peer can accept the channel and never answer.
    await open.withDeadline(Date.now() + timeoutMs, () => open.workflowService.describeNamespace({ namespace }));
    return 'ready';
  } catch (error) {
    return (error as { code?: unknown }).code === GRPC_NOT_FOUND ? 'namespace-missing' : 'unreachable';
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

async function registerNamespace(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    // One week of history is plenty for a development server and keeps its SQLite file small.
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('7 days') });
  } catch (error) {
    // ALREADY_EXISTS: another process registered it in between, which is what we wanted.
    if ((error as { code?: unknown }).code !== 6) throw error;
  } finally {
    await connection.close();
  }
}

async function waitForProbe(probe: () => Promise<TemporalProbe>, want: TemporalProbe[], attempts: number): Promise<TemporalProbe> {
  let last: TemporalProbe = 'unreachable';
  for (let i = 0; i < attempts; i++) {
    last = await probe();
    if (want.includes(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return last;
}

/**
 * Starts `temporal server start-dev` (SQLite in `<home>/temporal.db`), or reuses a Temporal server
 * that already answers on the port, registering the namespace there if it lacks it.
 * Ready when the gRPC port accepts connections and the namespace can be described.
 * @throws PortInUseError when the port (or the UI port) belongs to some other program.
 * @throws MissingBinaryError when no `temporal` binary is found.
 * @throws ServiceStartError when the server exits or is not ready in time.
 */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalServiceHandle> {
  return withStartLock(options.home, 'temporal', (options.readyTimeoutMs ?? 60_000) + 30_000, () => startTemporalDevServerUnlocked(options));
}

async function startTemporalDevServerUnlocked(options: TemporalDevServerOptions): Promise<TemporalServiceHandle> {
  if (options.homeOwned !== true) return startOnNamedPort(options);
  const host = options.host ?? '127.0.0.1';
  const owned = ownedService(options.home, temporalIdentity(options.home));
  if (owned !== null) {
    const address = `${host}:${owned.port}`;
    // Ours by its command line, so wait for it as for a server still starting.
    const state = await waitForProbe(() => probeTemporal(address, options.namespace), ['ready', 'namespace-missing'], 40);
    if (state === 'unreachable') {
      throw new Error(`the Temporal dev server of ${options.home} (pid ${owned.pid}) does not answer on ${address}; stop it with detl services stop`);
    }
    if (state === 'namespace-missing') await registerNamespace(address, options.namespace);
    return { ...reusedService('temporal'), address, uiPort: owned.extraPorts['ui'] };
  }
  // A port taken between choosing and binding makes the server exit early: choose again.
  for (let attempt = 1; ; attempt++) {
    const port = await choosePort(host, options.port);
    const uiPort = await choosePort(host, options.uiPort, [port]);
    try {
      return await launchDevServer(options, host, port, uiPort);
    } catch (error) {
      if (!(error instanceof ServiceStartError) || attempt >= 3 || !(await isPortAccepting(host, port))) throw error;
    }
  }
}

async function startOnNamedPort(options: TemporalDevServerOptions): Promise<TemporalServiceHandle> {
  const host = options.host ?? '127.0.0.1';
  const address = `${host}:${options.port}`;
  const probe = () => probeTemporal(address, options.namespace);

  if (await isPortAccepting(host, options.port)) {
    // A server that is itself still starting needs a few seconds before it answers.
    const state = await waitForProbe(probe, ['ready', 'namespace-missing'], 3);
    if (state === 'unreachable') {
      throw new PortInUseError('Temporal server', host, options.port, 'Stop that program or set DETL_TEMPORAL_ADDRESS to a free port or a real Temporal server.');
    }
    if (state === 'namespace-missing') {
      await registerNamespace(address, options.namespace);
      await waitForProbe(probe, ['ready'], 20);
    }
    return { ...reusedService('temporal'), address };
  }
  if (options.headless !== true && (await isPortAccepting(host, options.uiPort))) {
    throw new PortInUseError('Temporal Web UI', host, options.uiPort, 'Stop that program or choose another UI port.');
  }
  return launchDevServer(options, host, options.port, options.uiPort).catch(async (error: unknown) => {
    // Another process (a worker, a second CLI) started it at the same moment and won the port.
    if (error instanceof ServiceStartError && (await probe()) === 'ready') return { ...reusedService('temporal'), address };
    throw error;
  });
}

async function launchDevServer(options: TemporalDevServerOptions, host: string, port: number, uiPort: number): Promise<TemporalServiceHandle> {
  const address = `${host}:${port}`;
  const probe = () => probeTemporal(address, options.namespace);
  const binary = options.binary ?? resolveToolBinary('temporal');
  mkdirSync(options.home, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    path.join(options.home, 'temporal.db'),
    '--log-level',
    'warn',
  ];
  // 'default' always exists; naming it again is harmless but noisy in the log.
  if (options.namespace !== 'default') args.push('--namespace', options.namespace);
  if (options.headless === true) args.push('--headless');

  const handle = await launchService({
    name: 'temporal',
    home: options.home,
    command: binary,
    args,
    isReady: async () => (await isPortAccepting(host, port)) && (await probe()) === 'ready',
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
    keepAlive: options.keepAlive,
    record: { host, port, extraPorts: options.headless === true ? {} : { ui: uiPort }, dataPath: temporalIdentity(options.home).dataPath },
  });
  return { ...handle, address, uiPort: options.headless === true ? undefined : uiPort };
}
