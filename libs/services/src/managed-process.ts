import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { removeServiceRecord, writeServiceRecord, type ServiceRecord } from './home-services';

/** A service the caller can rely on: started here, or found already running and reused. */
export interface ServiceHandle {
  readonly name: string;
  /** Process id of the child started here; null when a running service was reused. */
  readonly pid: number | null;
  /** True when another process (a worker, the CLI) had already started this service. */
  readonly reused: boolean;
  /** Where the child's stdout/stderr go; null when reused. */
  readonly logFile: string | null;
  /**
   * Stops the child started here (SIGTERM, then SIGKILL after the grace period). Does nothing for a
   * reused service, because someone else owns it.
   */
  stop(): Promise<void>;
}

/** Raised when a port is held by a program that is not the service we expected. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(
    readonly service: string,
    readonly host: string,
    readonly port: number,
    hint: string,
  ) {
    super(`${host}:${port} is already in use by a program that is not a working ${service}. ${hint}`);
  }
}

/** Raised when a service process exits or fails to become ready; carries the end of its log. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
  constructor(
    readonly service: string,
    reason: string,
    readonly logFile: string,
    readonly logTail: string,
  ) {
    super(`${service} did not start: ${reason}. Log: ${logFile}${logTail === '' ? '' : `\n--- last lines ---\n${logTail}`}`);
  }
}

/** What {@link launchService} runs and how it knows the service is usable. */
export interface LaunchOptions {
  /** Short name used for `<home>/logs/<name>.log` and `<home>/run/<name>.pid`. */
  name: string;
  home: string;
  command: string;
  args: string[];
  /** Added to the parent's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Polled until it resolves true; must not throw for "not yet". */
  isReady: () => Promise<boolean>;
  readyTimeoutMs: number;
  /** Grace period between SIGTERM and SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
  /**
   * Leave the service running when this process exits (the CLI starting services a later worker
   * reuses). By default children are killed on exit so a crashed test leaves no stray servers.
   */
  keepAlive?: boolean;
  /**
   * Ports and data path to record in `<home>/run/<name>.json` once the service is ready, so later
   * commands of this home find it and commands of other homes can tell it is not theirs.
   */
  record?: Pick<ServiceRecord, 'host' | 'port' | 'extraPorts' | 'dataPath'>;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous, so this cannot wait for the children: it only asks the ones
  // a crashed or impatient caller never stopped to shut down, so no stray servers hold the ports.
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

/** Path of the pid file recorded for a service started under `home`. */
export function pidFilePath(home: string, name: string): string {
  return path.join(home, 'run', `${name}.pid`);
}

/** Path of the log file a service started under `home` writes to. */
export function logFilePath(home: string, name: string): string {
  return path.join(home, 'logs', `${name}.log`);
}

/** Last `lines` lines of a file, or '' when it cannot be read. */
export function readLogTail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Whether the pid recorded for `name` under `home` is a live process whose command line contains
 * `marker`. Checking the command line guards against a recycled pid belonging to something else.
 */
export function recordedProcessAlive(home: string, name: string, marker: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFilePath(home, name), 'utf8').trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    // No /proc (macOS): a live recorded pid is the best evidence there is.
    return true;
  }
}

/** Handle for a service some other process started. */
export function reusedService(name: string): ServiceHandle {
  return { name, pid: null, reused: true, logFile: null, stop: async () => undefined };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Starts a long-running child process with its output in `<home>/logs/<name>.log`, records its pid
 * in `<home>/run/<name>.pid`, and resolves once `isReady` says so.
 * @throws ServiceStartError when the child exits early, cannot be spawned, or is not ready in time
 * (the child is killed then).
 */
export async function launchService(options: LaunchOptions): Promise<ServiceHandle> {
  const logFile = logFilePath(options.home, options.name);
  const pidFile = pidFilePath(options.home, options.name);
  mkdirSync(path.dirname(logFile), { recursive: true });
  mkdirSync(path.dirname(pidFile), { recursive: true });

  const fd = openSync(logFile, 'a');
  writeSync(fd, `\n=== ${new Date().toISOString()} ${options.command} ${options.args.join(' ')}\n`);
  let child: ChildProcess;
  try {
    // The child writes straight into the log file rather than through a pipe, so it never blocks on
    // a full pipe and keeps logging if this process goes away.
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', fd, fd],
      detached: options.keepAlive === true,
    });
  } finally {
    closeSync(fd);
  }

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let spawnError: Error | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveChildren.delete(child);
      resolve();
    });
    child.once('error', (error) => {
      spawnError = error;
      liveChildren.delete(child);
      resolve();
    });
  });

  if (options.keepAlive === true) {
    child.unref();
  } else {
    installExitHook();
    liveChildren.add(child);
  }
  if (child.pid !== undefined) writeFileSync(pidFile, `${child.pid}\n`);

  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const stop = async (): Promise<void> => {
    if (exitInfo === null && spawnError === null) {
      child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), stopTimeoutMs).unref());
      if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    }
    try {
      if (readFileSync(pidFile, 'utf8').trim() === String(child.pid)) rmSync(pidFile, { force: true });
    } catch {
      // pid file already gone or taken over by a newer start
    }
    if (options.record) removeServiceRecord(options.home, options.name, child.pid);
  };

  const fail = async (reason: string): Promise<never> => {
    await stop();
    throw new ServiceStartError(options.name, reason, logFile, readLogTail(logFile));
  };

  // A missing or non-executable command is only reported asynchronously; without this wait a
  // readiness check that happens to pass (a port someone else opened) would hide it.
  await Promise.race([new Promise<void>((resolve) => child.once('spawn', () => resolve())), exited]);

  const deadline = Date.now() + options.readyTimeoutMs;
  for (;;) {
    if (spawnError !== null) return fail(`could not run ${options.command}: ${(spawnError as Error).message}`);
    if (exitInfo !== null) {
      const info = exitInfo as { code: number | null; signal: NodeJS.Signals | null };
      return fail(`process exited early (${info.signal ?? `code ${info.code}`})`);
    }
    if (await options.isReady().catch(() => false)) break;
    if (Date.now() > deadline) return fail(`not ready after ${options.readyTimeoutMs} ms`);
    await Promise.race([sleep(200), exited]);
  }

  if (options.record && child.pid !== undefined) {
    writeServiceRecord(options.home, { name: options.name, pid: child.pid, ...options.record, startedAt: new Date().toISOString() });
  }
  return { name: options.name, pid: child.pid ?? null, reused: false, logFile, stop };
}

/**
 * Stops a service a previous process started with `keepAlive` and recorded in
 * `<home>/run/<name>.pid`: SIGTERM, then SIGKILL after `timeoutMs`. The pid is only signalled when
 * its command line contains `marker`, so a recycled pid belonging to another program is left alone.
 * @returns true when a process was stopped, false when none was recorded or it was already gone.
 */
export async function stopRecordedService(home: string, name: string, marker: string, timeoutMs = 10_000): Promise<boolean> {
  const pidFile = pidFilePath(home, name);
  if (!recordedProcessAlive(home, name, marker)) {
    rmSync(pidFile, { force: true });
    removeServiceRecord(home, name);
    return false;
  }
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const alive = () => pidAlive(pid);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive() && Date.now() < deadline) await sleep(100);
  if (alive()) {
    process.kill(pid, 'SIGKILL');
    while (alive()) await sleep(50);
  }
  rmSync(pidFile, { force: true });
  removeServiceRecord(home, name, pid);
  return true;
}

/**
 * Whether a process with this pid runs and this process may signal it; another user's process
 * (EPERM) counts as gone, since detl never started it.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `fn` while holding `<home>/run/<name>.lock`, so two processes sharing a home (the CLI and a
 * worker starting at once) never both start the same service: the second waits, then finds the
 * first one's service running and reuses it. A lock left by a dead process is taken over.
 * @throws Error when the lock is still held after `timeoutMs`.
 */
export async function withStartLock<T>(home: string, name: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const lockFile = path.join(home, 'run', `${name}.lock`);
  mkdirSync(path.dirname(lockFile), { recursive: true });
  const token = `${process.pid} ${Math.random().toString(36).slice(2)}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(lockFile, token, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = '';
    try {
      holder = readFileSync(lockFile, 'utf8');
    } catch {
      continue; // released between our attempt and the read
    }
    const holderPid = Number(holder.split(' ')[0]);
    if (!Number.isInteger(holderPid) || !pidAlive(holderPid)) {
      rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${name} is being started by process ${holderPid} (lock ${lockFile}) for more than ${timeoutMs} ms`);
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(lockFile, 'utf8') === token) rmSync(lockFile, { force: true });
    } catch {
      // already removed
    }
  }
}
