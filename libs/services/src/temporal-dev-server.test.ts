import { createServer, type Server, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logFilePath, PortInUseError } from './managed-process';
import { findFreePort, isPortAccepting } from './net';
import { probeTemporal, startTemporalDevServer, type TemporalServiceHandle } from './temporal-dev-server';

let home: string;
let server: TemporalServiceHandle;
let port: number;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-temporal-'));
  port = await findFreePort();
  server = await startTemporalDevServer({ home, port, uiPort: await findFreePort(), namespace: 'detl-test', headless: true });
});
afterAll(async () => {
  await server?.stop();
  await rm(home, { recursive: true, force: true });
});

describe('startTemporalDevServer', () => {
  it('starts a dev server whose namespace exists, with its database and log under home', async () => {
    expect(server.reused).toBe(false);
    expect(server.address).toBe(`127.0.0.1:${port}`);
    expect(await probeTemporal(server.address, 'detl-test')).toBe('ready');
    expect(await probeTemporal(server.address, 'no-such-namespace')).toBe('namespace-missing');
    expect(existsSync(path.join(home, 'temporal.db'))).toBe(true);
    expect(existsSync(logFilePath(home, 'temporal'))).toBe(true);
  });

  it('reuses the running server and registers a namespace it lacks', async () => {
    const again = await startTemporalDevServer({ home, port, uiPort: await findFreePort(), namespace: 'detl-other', headless: true });
    expect(again.reused).toBe(true);
    expect(await probeTemporal(again.address, 'detl-other')).toBe('ready');
  });

  it('refuses a port held by a program that is not Temporal', async () => {
    const sockets = new Set<Socket>();
    const foreign: Server = createServer((socket) => {
      sockets.add(socket);
      // The probe hangs up abruptly; that is expected here.
      socket.on('error', () => undefined);
      socket.end('hello\n');
    });
    const foreignPort = await findFreePort();
    await new Promise<void>((resolve) => foreign.listen(foreignPort, '127.0.0.1', resolve));
    try {
      await expect(
        startTemporalDevServer({ home: path.join(home, 'foreign'), port: foreignPort, uiPort: await findFreePort(), namespace: 'default', headless: true }),
      ).rejects.toThrow(PortInUseError);
    } finally {
      // close() waits for every connection, and a gRPC client may keep its half of one open.
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => foreign.close(resolve));
    }
  });

  it('stops the server it started', async () => {
    const ownHome = path.join(home, 'own');
    const ownPort = await findFreePort();
    const own = await startTemporalDevServer({ home: ownHome, port: ownPort, uiPort: await findFreePort(), namespace: 'default', headless: true });
    await own.stop();
    expect(await isPortAccepting('127.0.0.1', ownPort)).toBe(false);
  });
});
