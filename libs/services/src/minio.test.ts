import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logFilePath, pidFilePath, PortInUseError } from './managed-process';
import { startMinio } from './minio';
import { findFreePort, isPortAccepting } from './net';
import { startTestMinio, type TestMinio } from './test-minio';
import { MissingBinaryError } from './tool-binary';

let minio: TestMinio;

beforeAll(async () => {
  minio = await startTestMinio();
});
afterAll(async () => {
  await minio?.stop();
});

function endpointPort(endpoint: string | undefined): number {
  return Number(new URL(endpoint ?? 'http://invalid').port);
}

describe('startTestMinio', () => {
  it('serves S3 on a loopback port with its own credentials', async () => {
    expect(minio.settings.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(minio.settings.forcePathStyle).toBe(true);
    expect(minio.settings.accessKeyId).toMatch(/^test-/);
    const health = await fetch(`${minio.settings.endpoint}/minio/health/ready`);
    expect(health.status).toBe(200);
    expect(readFileSync(pidFilePath(minio.home, 'minio'), 'utf8').trim()).toMatch(/^\d+$/);
    expect(existsSync(logFilePath(minio.home, 'minio'))).toBe(true);
  });

  it('stops the server and removes its folder', async () => {
    const other = await startTestMinio();
    const port = endpointPort(other.settings.endpoint);
    await other.stop();
    expect(await isPortAccepting('127.0.0.1', port)).toBe(false);
    expect(existsSync(other.home)).toBe(false);
  });
});

describe('startMinio', () => {
  const credentials = () => ({ accessKeyId: minio.settings.accessKeyId ?? '', secretAccessKey: minio.settings.secretAccessKey ?? '' });

  it('reuses a MinIO already answering on the port with the same credentials', async () => {
    const port = endpointPort(minio.settings.endpoint);
    const handle = await startMinio({ home: path.join(minio.home, 'second'), port, consolePort: await findFreePort(), credentials: credentials() });
    expect(handle.reused).toBe(true);
    expect(handle.pid).toBeNull();
    await handle.stop();
    // Stopping a reused handle must leave the owner's server running.
    expect(await isPortAccepting('127.0.0.1', port)).toBe(true);
  });

  it('refuses a MinIO on the port that has other credentials', async () => {
    const port = endpointPort(minio.settings.endpoint);
    const attempt = startMinio({
      home: path.join(minio.home, 'third'),
      port,
      consolePort: await findFreePort(),
      credentials: { accessKeyId: 'someone-else', secretAccessKey: 'not-the-secret' },
    });
    await expect(attempt).rejects.toThrow(PortInUseError);
    await expect(attempt).rejects.toThrow(/rejects access key "someone-else"/);
  });

  it('refuses a port held by a program that is not MinIO', async () => {
    const server: Server = createServer((_request, response) => response.writeHead(404).end());
    const port = await findFreePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await expect(startMinio({ home: path.join(minio.home, 'fourth'), port, consolePort: await findFreePort(), credentials: credentials() })).rejects.toThrow(
        new RegExp(`127\\.0\\.0\\.1:${port} is already in use by a program that is not a working MinIO server`),
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('explains how to get the binary when it is missing', async () => {
    const saved = process.env.DETL_MINIO_BIN;
    process.env.DETL_MINIO_BIN = path.join(minio.home, 'no-minio-here');
    try {
      const attempt = startMinio({ home: path.join(minio.home, 'fifth'), port: await findFreePort(), consolePort: await findFreePort(), credentials: credentials() });
      await expect(attempt).rejects.toThrow(MissingBinaryError);
      await expect(attempt).rejects.toThrow(/tools\/ensure-binaries\.sh/);
    } finally {
      if (saved === undefined) delete process.env.DETL_MINIO_BIN;
      else process.env.DETL_MINIO_BIN = saved;
    }
  });
});
