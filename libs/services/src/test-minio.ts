import type { ServiceSettings } from '@detl/config';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMinio } from './minio';
import { findFreePort } from './net';

/** A throw-away MinIO for one test file. */
export interface TestMinio {
  /** S3 settings pointing at it; the bucket does not exist yet (create it with the store's `ensureBucket`). */
  settings: ServiceSettings['s3'];
  /** Folder holding its data, log and pid file; removed by `stop`. */
  home: string;
  /** Stops the server and deletes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts a real MinIO on a free loopback port with fresh credentials and an empty temp folder, for
 * tests of code that talks to S3.
 * @throws MissingBinaryError when no `minio` binary is found (run tools/ensure-binaries.sh).
 */
export async function startTestMinio(options: { bucket?: string } = {}): Promise<TestMinio> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'detl-minio-'));
  try {
    const [port, consolePort] = [await findFreePort(), await findFreePort()];
    const credentials = { accessKeyId: `test-${randomBytes(4).toString('hex')}`, secretAccessKey: randomBytes(16).toString('hex') };
    const handle = await startMinio({ home, port, consolePort, credentials });
    return {
      settings: {
        endpoint: handle.endpoint,
        region: 'us-east-1',
        bucket: options.bucket ?? 'detl-test',
        accessKeyId: credentials.accessKeyId,
        secretAccessKey: credentials.secretAccessKey,
        forcePathStyle: true,
      },
      home,
      stop: async () => {
        await handle.stop();
        await rm(home, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(home, { recursive: true, force: true });
    throw error;
  }
}
