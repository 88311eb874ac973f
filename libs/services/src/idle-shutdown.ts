import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchService, pidAlive, recordedProcessAlive, stopRecordedService } from './managed-process';

/**
 * Environment variable naming how many minutes a home's embedded services stay up after the last
 * detl command or worker using them exits. `0` stops them with the last command (the behaviour of
 * tests and CI, which must leave nothing running).
 */
export const SERVICES_IDLE_ENV_VARIABLE = 'DETL_SERVICES_IDLE_MINUTES';

/** Default idle time: long enough for a user to read a run's result and open the Temporal UI link. */
export const DEFAULT_SERVICES_IDLE_MINUTES = 30;

const WATCHDOG_NAME = 'idle-watchdog';
/** Part of the watchdog's command line, so a recycled pid is never taken for it. */
const WATCHDOG_MARKER = 'idle-watchdog-main';

/**
 * How long the embedded services outlive their last user, from {@link SERVICES_IDLE_ENV_VARIABLE}.
 * @returns milliseconds; 0 means "stop with the last command".
 * @throws Error naming the variable when its value is not a non-negative number of minutes.
 */
export function servicesIdleTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[SERVICES_IDLE_ENV_VARIABLE];
  if (raw === undefined || raw.trim() === '') return DEFAULT_SERVICES_IDLE_MINUTES * 60_000;
  const minutes = Number(raw);
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new Error(`${SERVICES_IDLE_ENV_VARIABLE}=${raw}: expected a number of minutes >= 0 (0 stops the services with the last command)`);
  }
  return Math.round(minutes * 60_000);
}

function clientsDir(home: string): string {
  return path.join(home, 'run', 'clients');
}

/** Marker written by `detl services start`: services started on purpose are never stopped for idleness. */
function pinFile(home: string): string {
  return path.join(home, 'run', 'services-pinned');
}

/**
 * Records this process as a user of the home's services until the returned release function runs
 * (or the process dies: a dead pid no longer counts, so a SIGKILLed command never pins them).
 */
export function registerServicesClient(home: string, pid: number = process.pid): () => void {
  const dir = clientsDir(home);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, String(pid));
  writeFileSync(file, `${new Date().toISOString()}\n`);
  return () => rmSync(file, { force: true });
}

/**
 * The pids of live processes using the home's services; entries of dead processes are removed.
 */
export function liveServicesClients(home: string): number[] {
  const dir = clientsDir(home);
  if (!existsSync(dir)) return [];
  const live: number[] = [];
  for (const entry of readdirSync(dir)) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) live.push(pid);
    else rmSync(path.join(dir, entry), { force: true });
  }
  return live;
}

/** Marks the home's services as started on purpose (`detl services start`), or clears the mark. */
export function pinServices(home: string, pinned: boolean): void {
  if (pinned) {
    mkdirSync(path.dirname(pinFile(home)), { recursive: true });
    writeFileSync(pinFile(home), `${new Date().toISOString()}\n`);
  } else {
    rmSync(pinFile(home), { force: true });
  }
}

/** Whether `detl services start` asked for the home's services to run until `detl services stop`. */
export function servicesPinned(home: string): boolean {
  return existsSync(pinFile(home));
}

/** Whether the home's idle watchdog process is running. */
export function idleWatchdogRunning(home: string): boolean {
  return recordedProcessAlive(home, WATCHDOG_NAME, WATCHDOG_MARKER);
}

/** Stops the home's idle watchdog (for `detl services stop`). @returns whether one was running. */
export async function stopIdleWatchdog(home: string): Promise<boolean> {
  return stopRecordedService(home, WATCHDOG_NAME, WATCHDOG_MARKER);
}

/** Path of the watchdog's entry point, beside this module. */
function watchdogEntry(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'idle-watchdog-main.ts');
}

/**
 * Starts the home's idle watchdog unless one runs: a detached process that stops the embedded
 * services once no registered client has been alive for `idleTimeoutMs`
 * ({@link runIdleWatchdog}). Its log is `<home>/logs/idle-watchdog.log`.
 */
export async function ensureIdleWatchdog(home: string, idleTimeoutMs: number): Promise<void> {
  if (idleWatchdogRunning(home)) return;
  const entry = watchdogEntry();
  const tsxLoader = pathToFileURL(createRequire(entry).resolve('tsx')).href;
  await launchService({
    name: WATCHDOG_NAME,
    home,
    command: process.execPath,
    args: ['--import', tsxLoader, entry, '--home', home, '--idle-ms', String(idleTimeoutMs)],
    isReady: async () => true,
    readyTimeoutMs: 10_000,
    keepAlive: true,
  });
}

/** What {@link runIdleWatchdog} needs; the stop function is injected so tests need no services. */
export interface IdleWatchdogOptions {
  home: string;
  idleTimeoutMs: number;
  /** Stops the home's services; returns the names stopped. */
  stopServices: (home: string) => Promise<string[]>;
  /** How often clients are counted (default a quarter of the idle time, between 0.2 and 5 s). */
  pollMs?: number;
  log?: (line: string) => void;
}

/**
 * The watchdog's loop: returns after stopping the services once no client has been alive for
 * `idleTimeoutMs`, or at once when the services were pinned by `detl services start`.
 * @returns why it ended.
 */
export async function runIdleWatchdog(options: IdleWatchdogOptions): Promise<'stopped' | 'pinned'> {
  const pollMs = options.pollMs ?? Math.min(5_000, Math.max(200, options.idleTimeoutMs / 4));
  const log = options.log ?? (() => undefined);
  let idleSince = Date.now();
  for (;;) {
    if (servicesPinned(options.home)) {
      log('services pinned by `detl services start`; the watchdog leaves them to `detl services stop`');
      return 'pinned';
    }
    const clients = liveServicesClients(options.home);
    if (clients.length > 0) idleSince = Date.now();
    else if (Date.now() - idleSince >= options.idleTimeoutMs) {
      const stopped = await options.stopServices(options.home);
      log(`no detl command or worker used the services for ${Math.round(options.idleTimeoutMs / 1000)} s; stopped: ${stopped.join(', ') || 'none'}`);
      return 'stopped';
    }
    await new Promise<void>((resolve) => setTimeout(resolve, pollMs));
  }
}
