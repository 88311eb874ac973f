import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadPrefix, uploadDirectory } from './directory-transfer';
import { createObjectStore, type S3ObjectStore } from './s3-object-store';

let minio: TestMinio;
let store: S3ObjectStore;
let dir: string;

beforeAll(async () => {
  [minio, dir] = await Promise.all([startTestMinio(), mkdtemp(path.join(os.tmpdir(), 'detl-transfer-'))]);
  store = createObjectStore({ ...minio.settings, bucket: `transfer-${randomUUID().slice(0, 8)}` });
  await store.ensureBucket();
});
afterAll(async () => {
  store?.close();
  await minio?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('uploadDirectory / downloadPrefix', () => {
  it('round-trips a model folder with nested files and content types', async () => {
    const source = path.join(dir, 'model');
    await mkdir(path.join(source, 'nested'), { recursive: true });
    await writeFile(path.join(source, 'model.json'), '{"format":"layers-model"}');
    await writeFile(path.join(source, 'weights.bin'), new Uint8Array([1, 2, 3, 4]));
    await writeFile(path.join(source, 'nested', 'extra.png'), new Uint8Array([137, 80, 78, 71]));

    const stored = await uploadDirectory(store, source, 'experiments/e1/pretrain/best');
    expect(stored.map((s) => s.key)).toEqual([
      'experiments/e1/pretrain/best/model.json',
      'experiments/e1/pretrain/best/nested/extra.png',
      'experiments/e1/pretrain/best/weights.bin',
    ]);
    const head = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: 'experiments/e1/pretrain/best/model.json' }));
    expect(head.ContentType).toBe('application/json');

    const target = await downloadPrefix(store, 'experiments/e1/pretrain/best', path.join(dir, 'downloaded'));
    expect(await readFile(path.join(target, 'model.json'), 'utf8')).toBe('{"format":"layers-model"}');
    expect(Array.from(await readFile(path.join(target, 'weights.bin')))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await readFile(path.join(target, 'nested', 'extra.png')))).toEqual([137, 80, 78, 71]);
  });

  it('does not mix in keys that merely share the prefix text', async () => {
    await store.putObject('runs/a/file.txt', 'a');
    await store.putObject('runs/ab/file.txt', 'ab');
    const target = await downloadPrefix(store, 'runs/a', path.join(dir, 'only-a'));
    expect(await readFile(path.join(target, 'file.txt'), 'utf8')).toBe('a');
  });

  it('fails clearly when nothing is stored under the prefix', async () => {
    await expect(downloadPrefix(store, 'missing/model', path.join(dir, 'none'))).rejects.toThrow(`nothing stored under s3://${store.bucket}/missing/model/`);
  });
});
