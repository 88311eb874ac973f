import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { launchService, logFilePath, pidFilePath, recordedProcessAlive, ServiceStartError, stopRecordedService, withStartLock } from './managed-process';
import { findFreePort, isPortAccepting } from './net';

let home: string;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-managed-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A tiny TCP server as a stand-in service; `ignoreTerm` makes it refuse SIGTERM. */
function serverScript(port: number, ignoreTerm = false): string {
  return [
    ignoreTerm ? "process.on('SIGTERM', () => console.log('ignoring SIGTERM'));" : '',
    `require('node:net').createServer().listen(${port}, '127.0.0.1', () => console.log('listening ${port}'));`,
  ].join('\n');
}

describe('launchService', () => {
  it('waits for readiness, logs to <home>/logs, records the pid and stops cleanly', async () => {
    const port = await findFreePort();
    const handle = await launchService({
      name: 'echo',
      home,
      command: process.execPath,
      args: ['-e', serverScript(port)],
      isReady: () => isPortAccepting('127.0.0.1', port),
      readyTimeoutMs: 10_000,
    });
    expect(handle.reused).toBe(false);
    expect(handle.pid).not.toBeNull();
    expect(await isPortAccepting('127.0.0.1', port)).toBe(true);
    expect(readFileSync(pidFilePath(home, 'echo'), 'utf8').trim()).toBe(String(handle.pid));
    expect(recordedProcessAlive(home, 'echo', 'createServer')).toBe(true);
    expect(recordedProcessAlive(home, 'echo', 'some-other-program')).toBe(false);

    await handle.stop();
    expect(isAlive(handle.pid ?? -1)).toBe(false);
    expect(existsSync(pidFilePath(home, 'echo'))).toBe(false);
    expect(readFileSync(logFilePath(home, 'echo'), 'utf8')).toContain(`listening ${port}`);
  });

  it('kills a child that ignores SIGTERM once the grace period is over', async () => {
    const port = await findFreePort();
    const handle = await launchService({
      name: 'stubborn',
      home,
      command: process.execPath,
      args: ['-e', serverScript(port, true)],
      isReady: () => isPortAccepting('127.0.0.1', port),
      readyTimeoutMs: 10_000,
      stopTimeoutMs: 300,
    });
    const started = Date.now();
    await handle.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(isAlive(handle.pid ?? -1)).toBe(false);
    expect(readFileSync(logFilePath(home, 'stubborn'), 'utf8')).toContain('ignoring SIGTERM');
  });

  it('reports a child that exits before it is ready, with the end of its log', async () => {
    const attempt = launchService({
      name: 'crasher',
      home,
      command: process.execPath,
      args: ['-e', "console.error('config file is broken'); process.exit(3)"],
      isReady: async () => false,
      readyTimeoutMs: 10_000,
    });
    await expect(attempt).rejects.toThrow(ServiceStartError);
    await expect(attempt).rejects.toThrow(/exited early \(code 3\)[\s\S]*config file is broken/);
  });

  it('gives up and kills the child when it is not ready in time', async () => {
    const attempt = launchService({
      name: 'sleeper',
      home,
      command: process.execPath,
      args: ['-e', 'setInterval(() => {}, 1000)'],
      isReady: async () => false,
      readyTimeoutMs: 500,
      stopTimeoutMs: 2_000,
    });
    await expect(attempt).rejects.toThrow(/not ready after 500 ms/);
    expect(existsSync(pidFilePath(home, 'sleeper'))).toBe(false);
  });

  it('reports a command that cannot be run', async () => {
    await expect(
      launchService({ name: 'ghost', home, command: path.join(home, 'no-such-binary'), args: [], isReady: async () => true, readyTimeoutMs: 1_000 }),
    ).rejects.toThrow(/could not run .*no-such-binary/);
  });
});

describe('stopRecordedService', () => {
  it('stops a kept-alive service from its pid file, and only when the command matches', async () => {
    const port = await findFreePort();
    const handle = await launchService({
      name: 'detached',
      home,
      command: process.execPath,
      args: ['-e', serverScript(port)],
      isReady: () => isPortAccepting('127.0.0.1', port),
      readyTimeoutMs: 10_000,
      keepAlive: true,
    });
    expect(await stopRecordedService(home, 'detached', 'not-this-program')).toBe(false);
    expect(isAlive(handle.pid ?? -1)).toBe(true);
    writeFileSync(pidFilePath(home, 'detached'), `${handle.pid}\n`);

    expect(await stopRecordedService(home, 'detached', 'createServer')).toBe(true);
    expect(isAlive(handle.pid ?? -1)).toBe(false);
    expect(existsSync(pidFilePath(home, 'detached'))).toBe(false);
    expect(await stopRecordedService(home, 'detached', 'createServer')).toBe(false);
  });
});

describe('withStartLock', () => {
  it('runs one holder at a time for the same home and name', async () => {
    const events: string[] = [];
    const holder = (id: string) =>
      withStartLock(home, 'locked', 5_000, async () => {
        events.push(`${id} in`);
        await new Promise((resolve) => setTimeout(resolve, 300));
        events.push(`${id} out`);
      });
    await Promise.all([holder('a'), holder('b')]);
    expect(events).toHaveLength(4);
    expect(events[0]?.endsWith('in') && events[1]?.endsWith('out') && events[2]?.endsWith('in')).toBe(true);
  });

  it('takes over a lock left by a dead process', async () => {
    writeFileSync(path.join(home, 'run', 'stale.lock'), '999999999 gone');
    expect(await withStartLock(home, 'stale', 1_000, async () => 'ran')).toBe('ran');
  });

  it('gives up when a live holder keeps the lock too long', async () => {
    writeFileSync(path.join(home, 'run', 'held.lock'), `${process.pid} other-holder`);
    await expect(withStartLock(home, 'held', 400, async () => 'ran')).rejects.toThrow(/being started by process/);
  });
});
