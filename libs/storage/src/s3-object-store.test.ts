import { createHash, randomUUID } from 'node:crypto';
import { findFreePort } from '@detl/services';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidObjectKeyError } from './object-key';
import { ObjectNotFoundError } from './object-store';
import { createObjectStore, S3ObjectStore } from './s3-object-store';

// Every test talks to a real MinIO started for this file: the behaviour under test (404 mapping,
// pagination, checksums, retries) is the server's as much as ours.
let minio: TestMinio;
let store: S3ObjectStore;

beforeAll(async () => {
  minio = await startTestMinio();
  store = createObjectStore({ ...minio.settings, bucket: `store-${randomUUID().slice(0, 8)}` });
  await store.ensureBucket();
});
afterAll(async () => {
  store?.close();
  await minio?.stop();
});

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

describe('S3ObjectStore', () => {
  it('round-trips bytes and reports their size and SHA-256', async () => {
    const body = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    const stored = await store.putObject('shards/bytes.u8', body);
    expect(stored).toEqual({ key: 'shards/bytes.u8', sizeBytes: 9, sha256: sha256(body), contentType: 'application/octet-stream' });
    expect(Array.from(await store.getObject('shards/bytes.u8'))).toEqual(Array.from(body));
    expect(await store.headObject('shards/bytes.u8')).toEqual({ sizeBytes: 9 });
  });

  it('stores strings as UTF-8 and hashes the encoded bytes', async () => {
    const text = '{"class":"covid","note":"ünïcödé"}';
    const stored = await store.putObject('manifests/m.json', text, 'application/json');
    expect(stored.sizeBytes).toBe(Buffer.byteLength(text));
    expect(stored.sha256).toBe(sha256(Buffer.from(text, 'utf8')));
    expect(Buffer.from(await store.getObject('manifests/m.json')).toString('utf8')).toBe(text);
  });

  it('overwrites an existing key with the new content', async () => {
    await store.putObject('overwrite/x.txt', 'first');
    await store.putObject('overwrite/x.txt', 'second, longer');
    expect(Buffer.from(await store.getObject('overwrite/x.txt')).toString()).toBe('second, longer');
  });

  it('raises ObjectNotFoundError for a missing key and null from headObject', async () => {
    await expect(store.getObject('nothing/here.bin')).rejects.toThrow(ObjectNotFoundError);
    await expect(store.getObject('nothing/here.bin')).rejects.toThrow('object not found: nothing/here.bin');
    expect(await store.headObject('nothing/here.bin')).toBeNull();
  });

  it('lists every key under a prefix across pages, sorted, and nothing outside it', async () => {
    // More than one ListObjectsV2 page (1,000 keys) so pagination is exercised.
    const keys = Array.from({ length: 1_005 }, (_, i) => `paged/k-${String(1_004 - i).padStart(4, '0')}`);
    const queue = [...keys];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let key = queue.pop(); key !== undefined; key = queue.pop()) await store.putObject(key, '');
      }),
    );
    await store.putObject('paged-sibling/not-me', 'x');
    const listed = await store.listKeys('paged/');
    expect(listed).toHaveLength(1_005);
    expect(listed).toEqual([...keys].sort());
    expect(await store.listKeys('no-such-prefix/')).toEqual([]);
  });

  it('deletes objects, and deleting a missing key is not an error', async () => {
    await store.putObject('delete/me.txt', 'bye');
    await store.deleteObject('delete/me.txt');
    expect(await store.headObject('delete/me.txt')).toBeNull();
    await expect(store.deleteObject('delete/me.txt')).resolves.toBeUndefined();
  });

  it('rejects bad keys before any request, naming the key', async () => {
    await expect(store.putObject('../escape', 'x')).rejects.toThrow(InvalidObjectKeyError);
    await expect(store.putObject('/abs/key', 'x')).rejects.toThrow('invalid object key "/abs/key"');
    await expect(store.getObject('a//b')).rejects.toThrow(/empty segment/);
    await expect(store.headObject('a\\b')).rejects.toThrow(/backslash/);
    await expect(store.deleteObject('x/../y')).rejects.toThrow(/"\.\." segment/);
    await expect(store.listKeys('/')).rejects.toThrow(/absolute/);
  });

  it('formats URIs as s3://bucket/key', () => {
    expect(store.uri('experiments/e1/report/summary.json')).toBe(`s3://${store.bucket}/experiments/e1/report/summary.json`);
  });

  it('ensureBucket is idempotent', async () => {
    await store.ensureBucket();
    await store.ensureBucket();
    expect(await store.headObject('shards/bytes.u8')).toEqual({ sizeBytes: 9 });
  });

  it('refuses requests signed with wrong credentials', async () => {
    const intruder = createObjectStore({ ...minio.settings, bucket: store.bucket, secretAccessKey: 'wrong-secret-123' }, { maxAttempts: 1 });
    try {
      await expect(intruder.getObject('shards/bytes.u8')).rejects.toThrow(/signature|SignatureDoesNotMatch/i);
    } finally {
      intruder.close();
    }
  });

  it('retries a failing request up to maxAttempts', async () => {
    const deadPort = await findFreePort();
    const unreachable = createObjectStore({ ...minio.settings, endpoint: `http://127.0.0.1:${deadPort}` }, { maxAttempts: 3 });
    try {
      const error = (await unreachable.headObject('any/key').catch((e: unknown) => e)) as { $metadata?: { attempts?: number } };
      expect(error).toBeInstanceOf(Error);
      expect(error.$metadata?.attempts).toBe(3);
    } finally {
      unreachable.close();
    }
  });

  it('accepts a whole ServiceSettings as well as its s3 part', () => {
    const whole = createObjectStore({
      home: '/tmp',
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'detl' },
      databaseUrl: 'postgresql://localhost/x',
      s3: { ...minio.settings, bucket: 'from-whole-settings' },
    });
    expect(whole.bucket).toBe('from-whole-settings');
    whole.close();
  });
});
