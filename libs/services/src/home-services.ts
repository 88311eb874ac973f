import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findFreePort, isPortAccepting } from './net';

/**
 * What a home records about an embedded service it started, in `<home>/run/<name>.json`: a later
 * command of the same home finds the service (and its ports) there, and a command of another home
 * never mistakes it for its own.
 */
export interface ServiceRecord {
  name: string;
  pid: number;
  host: string;
  /** The port clients use (gRPC, S3, PostgreSQL wire protocol). */
  port: number;
  /** Secondary ports (Temporal Web UI, MinIO console). */
  extraPorts: Record<string, number>;
  /** The data folder or file the process was started on; proves which home it belongs to. */
  dataPath: string;
  startedAt: string;
}

/** Path of the record {@link ServiceRecord} of `name` under `home`. */
export function serviceRecordPath(home: string, name: string): string {
  return path.join(home, 'run', `${name}.json`);
}

/** Writes the record atomically, so a concurrent reader never sees half of it. */
export function writeServiceRecord(home: string, record: ServiceRecord): void {
  const file = serviceRecordPath(home, record.name);
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(temporary, file);
}

/** Removes the record of `name` unless it now describes another process (a newer start). */
export function removeServiceRecord(home: string, name: string, pid?: number): void {
  const file = serviceRecordPath(home, name);
  if (pid !== undefined) {
    const current = readRecordFile(file);
    if (current !== null && current.pid !== pid) return;
  }
  rmSync(file, { force: true });
}

function readRecordFile(file: string): ServiceRecord | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<ServiceRecord>;
    if (typeof parsed.pid !== 'number' || typeof parsed.port !== 'number' || typeof parsed.dataPath !== 'string' || typeof parsed.name !== 'string') return null;
    return { host: '127.0.0.1', extraPorts: {}, startedAt: '', ...parsed } as ServiceRecord;
  } catch {
    return null;
  }
}

/** Command-line arguments of a live process, or null when it is gone; `[]` when there is no /proc (macOS). */
function processArguments(pid: number): string[] | null {
  try {
    process.kill(pid, 0);
  } catch {
    // Gone, or (EPERM) another user's process, which is not ours either.
    return null;
  }
  if (!existsSync('/proc/self/cmdline')) return [];
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '');
  } catch {
    return null;
  }
}

/** The argument after `flag` (`--port 7233`), or null. */
function argumentAfter(args: readonly string[], flag: string): string | null {
  const index = args.indexOf(flag);
  return index >= 0 ? (args[index + 1] ?? null) : null;
}

/** How to recognise a service process of one home from its command line. */
export interface ServiceIdentity {
  name: string;
  /** A fragment every command line of this service contains (`start-dev`, `minio`, `embedded-postgres-main`). */
  marker: string;
  /** The data folder or file of this home the process must have been started on. */
  dataPath: string;
  /** Reads the client port from the command line (for records written before ports were recorded). */
  portFromArguments(args: readonly string[]): number | null;
}

/**
 * The service of this home that is running now, or null. It is ours only when the recorded process
 * is alive and its command line names this home's data path: a port that answers proves nothing,
 * because another home's service (or any program) may be listening there.
 * Falls back to the bare `<name>.pid` file older versions wrote, reading the port from the command line.
 */
export function ownedService(home: string, identity: ServiceIdentity): ServiceRecord | null {
  const record = readRecordFile(serviceRecordPath(home, identity.name));
  let pid = record?.pid;
  if (pid === undefined) {
    try {
      pid = Number(readFileSync(path.join(home, 'run', `${identity.name}.pid`), 'utf8').trim());
    } catch {
      return null;
    }
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const args = processArguments(pid);
  if (args === null) return null;
  if (args.length === 0) return record; // no /proc: a live recorded pid is the best evidence there is
  const joined = args.join(' ');
  if (!joined.includes(identity.marker) || !args.some((arg) => arg === identity.dataPath || arg.endsWith(`=${identity.dataPath}`))) return null;
  const port = identity.portFromArguments(args) ?? record?.port ?? null;
  if (port === null) return null;
  return { name: identity.name, pid, host: record?.host ?? '127.0.0.1', port, extraPorts: record?.extraPorts ?? {}, dataPath: identity.dataPath, startedAt: record?.startedAt ?? '' };
}

/** Port readers for the three embedded services' command lines. */
export const portFromArguments = {
  /** `--port 7233` (Temporal dev server, PGlite server). */
  flag: (args: readonly string[]): number | null => {
    const value = Number(argumentAfter(args, '--port'));
    return Number.isInteger(value) && value > 0 ? value : null;
  },
  /** `--address 127.0.0.1:9000` (MinIO). */
  address: (args: readonly string[]): number | null => {
    const value = Number(argumentAfter(args, '--address')?.split(':').pop());
    return Number.isInteger(value) && value > 0 ? value : null;
  },
};

/**
 * `preferred` when nothing listens there, else a free port the kernel picks: a home's service moves
 * aside instead of reusing (or failing on) a port that another home or program holds.
 * @param taken ports already chosen for this service (a UI port must not equal the main port).
 */
export async function choosePort(host: string, preferred: number, taken: readonly number[] = []): Promise<number> {
  if (!taken.includes(preferred) && !(await isPortAccepting(host, preferred))) return preferred;
  for (;;) {
    const port = await findFreePort(host);
    if (!taken.includes(port)) return port;
  }
}
