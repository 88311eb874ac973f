import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectNotFoundError } from './object-store';
import { isTransientStorageError, withTransientObjectStoreRetries } from './retrying-object-store';
import { createObjectStore, DEFAULT_S3_MAX_ATTEMPTS, type S3ObjectStore } from './s3-object-store';

/**
 * An HTTP proxy in front of MinIO that fails the next requests in a chosen way: an S3 503 SlowDown
 * answer, or a connection reset before any answer. The store under test is the real S3 store with
 * its SDK retries; only the wire between it and MinIO misbehaves.
 */
class FaultyS3Proxy {
  private readonly server = http.createServer((request, response) => this.handle(request, response));
  requests = 0;
  /** Faults still to inject, consumed one per request. */
  faults: ('503' | 'reset')[] = [];
  port = 0;

  constructor(private readonly target: URL) {}

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    this.requests++;
    const fault = this.faults.shift();
    if (fault === 'reset') {
      request.socket.resetAndDestroy();
      return;
    }
    if (fault === '503') {
      request.resume();
      response.writeHead(503, { 'content-type': 'application/xml' });
      response.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      return;
    }
    // Headers pass unchanged, Host included, so MinIO checks the SigV4 signature the client made for the proxy's address.
    const upstream = http.request(
      { host: this.target.hostname, port: this.target.port, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  }
}

let minio: TestMinio;
let proxy: FaultyS3Proxy;
let direct: S3ObjectStore;
let throughProxy: S3ObjectStore;

beforeAll(async () => {
  minio = await startTestMinio();
  const bucket = `retry-${randomUUID().slice(0, 8)}`;
  direct = createObjectStore({ ...minio.settings, bucket });
  await direct.ensureBucket();
  proxy = new FaultyS3Proxy(new URL(minio.settings.endpoint ?? ''));
  await proxy.listen();
  throughProxy = createObjectStore({ ...minio.settings, bucket, endpoint: `http://127.0.0.1:${proxy.port}` });
});

afterAll(async () => {
  throughProxy?.close();
  direct?.close();
  await proxy?.close();
  await minio?.stop();
});

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

function retrying(logs: string[], budgetMs = 30_000) {
  return withTransientObjectStoreRetries(throughProxy, { initialDelayMs: 100, maxDelayMs: 500, budgetMs, log: (line) => logs.push(line) });
}

describe('withTransientObjectStoreRetries', () => {
  it('retries past a burst of 503s longer than the SDK attempts and stores the object once, with the right hash', async () => {
    const logs: string[] = [];
    const body = new Uint8Array(64 * 1024).map((_, i) => (i * 7) % 256);
    // Twice the SDK's attempts: its own retries alone cannot get through.
    proxy.faults = Array.from({ length: 2 * DEFAULT_S3_MAX_ATTEMPTS }, () => '503' as const);
    proxy.requests = 0;
    const stored = await retrying(logs).putObject('checkpoints/epoch-1/weights.bin', body);
    expect(proxy.requests).toBe(2 * DEFAULT_S3_MAX_ATTEMPTS + 1);
    expect(stored).toMatchObject({ sizeBytes: body.byteLength, sha256: sha256(body) });
    expect(sha256(await direct.getObject('checkpoints/epoch-1/weights.bin'))).toBe(sha256(body));
    expect(logs.filter((line) => /^s3\.putObject checkpoints\/epoch-1\/weights\.bin failed \(SlowDown: .*\); retry \d in /.test(line))).toHaveLength(2);
    expect(logs.at(-1)).toMatch(/^s3\.putObject checkpoints\/epoch-1\/weights\.bin succeeded after 2 retries/);
  });

  it('retries connections reset mid-request on reads and listings', async () => {
    const logs: string[] = [];
    await direct.putObject('reports/summary.json', '{"ok":true}', 'application/json');
    const store = retrying(logs);
    proxy.faults = Array.from({ length: DEFAULT_S3_MAX_ATTEMPTS + 1 }, () => 'reset' as const);
    expect(Buffer.from(await store.getObject('reports/summary.json')).toString()).toBe('{"ok":true}');
    proxy.faults = Array.from({ length: DEFAULT_S3_MAX_ATTEMPTS + 1 }, () => 'reset' as const);
    expect(await store.listKeys('reports/')).toEqual(['reports/summary.json']);
    expect(logs.filter((line) => / retry 1 in /.test(line))).toHaveLength(2);
  });

  it('gives up with the S3 error once the budget is spent', async () => {
    const logs: string[] = [];
    proxy.faults = Array.from({ length: 1_000 }, () => '503' as const);
    try {
      const error = await retrying(logs, 1_500).headObject('reports/summary.json').then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(isTransientStorageError(error)).toBe(true);
      expect((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(503);
      expect(logs.at(-1)).toMatch(/giving up after \d+ attempts/);
    } finally {
      proxy.faults = [];
    }
  });

  it('does not retry 4xx answers: a missing key and denied credentials fail on the first request', async () => {
    const logs: string[] = [];
    proxy.requests = 0;
    await expect(retrying(logs).getObject('reports/missing.json')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(proxy.requests).toBe(1);

    const stranger = createObjectStore({ ...minio.settings, bucket: throughProxy.bucket, endpoint: `http://127.0.0.1:${proxy.port}`, accessKeyId: 'nobody-here', secretAccessKey: 'not-the-secret-at-all' });
    try {
      proxy.requests = 0;
      const denied = await withTransientObjectStoreRetries(stranger, { log: (line) => logs.push(line) })
        .putObject('reports/x.json', '{}')
        .then(
          () => null,
          (caught: unknown) => caught,
        );
      expect((denied as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(403);
      expect(isTransientStorageError(denied)).toBe(false);
      expect(proxy.requests).toBe(1);
    } finally {
      stranger.close();
    }
    expect(logs).toEqual([]);
  });

  it('classifies refused connections as transient', async () => {
    const nowhere = createObjectStore({ ...minio.settings, bucket: throughProxy.bucket, endpoint: 'http://127.0.0.1:1' }, { maxAttempts: 1 });
    try {
      const refused = await nowhere.headObject('a').then(
        () => null,
        (caught: unknown) => caught,
      );
      expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
      expect(isTransientStorageError(refused)).toBe(true);
    } finally {
      nowhere.close();
    }
  });
});
