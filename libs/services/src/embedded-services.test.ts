import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ServiceSettings } from '@detl/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedPostgresEntry, postgresAnswers } from './embedded-postgres-process';
import { startEmbeddedServices, stopEmbeddedServices, usesEmbeddedServices } from './embedded-services';
import { logFilePath, pidFilePath } from './managed-process';
import { findFreePort, isPortAccepting } from './net';
import { probeTemporal } from './temporal-dev-server';

const pgliteEntryExists = existsSync(embeddedPostgresEntry());
if (!pgliteEntryExists) {
  console.warn(`skipping the embedded PostgreSQL tests: ${embeddedPostgresEntry()} does not exist yet`);
}

let home: string;
let settings: ServiceSettings;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-embedded-'));
  settings = {
    home,
    temporal: { address: `127.0.0.1:${await findFreePort()}`, namespace: 'default', taskQueue: 'detl' },
    databaseUrl: `postgresql://postgres:postgres@127.0.0.1:${await findFreePort()}/postgres`,
    s3: {
      endpoint: `http://127.0.0.1:${await findFreePort()}`,
      region: 'us-east-1',
      bucket: 'detl',
      accessKeyId: 'embedded-test',
      secretAccessKey: 'embedded-test-secret',
      forcePathStyle: true,
    },
  };
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

const port = (url: string) => Number(new URL(url).port);

describe('usesEmbeddedServices', () => {
  it('is true for loopback addresses and false when every service is remote', () => {
    expect(usesEmbeddedServices(settings)).toBe(true);
    const remote: ServiceSettings = {
      ...settings,
      temporal: { ...settings.temporal, address: 'temporal.example.com:7233' },
      databaseUrl: 'postgresql://u:p@db.example.com:5432/detl',
      s3: { ...settings.s3, endpoint: undefined },
    };
    expect(usesEmbeddedServices(remote)).toBe(false);
  });
});

describe('startEmbeddedServices', () => {
  it('leaves alone services the settings place on other hosts', async () => {
    const services = await startEmbeddedServices({
      ...settings,
      temporal: { ...settings.temporal, address: 'temporal.example.com:7233' },
      databaseUrl: 'postgresql://u:p@db.example.com:5432/detl',
      s3: { ...settings.s3, endpoint: 'https://s3.eu-west-1.amazonaws.com' },
    });
    expect(services).toMatchObject({ temporal: null, s3: null, postgres: null });
    await services.stop();
  });

  it.skipIf(!pgliteEntryExists)('starts Temporal, MinIO and PGlite, reuses them on a second call, and stops them', async () => {
    const first = await startEmbeddedServices(settings, { headless: true, temporalUiPort: await findFreePort(), s3ConsolePort: await findFreePort() });
    try {
      expect(first.temporal?.reused).toBe(false);
      expect(first.s3?.reused).toBe(false);
      expect(first.postgres?.reused).toBe(false);
      expect(await probeTemporal(settings.temporal.address, 'default')).toBe('ready');
      expect((await fetch(`${settings.s3.endpoint}/minio/health/ready`)).status).toBe(200);
      expect(await postgresAnswers(settings.databaseUrl)).toBe(true);
      for (const name of ['temporal', 'minio', 'postgres']) {
        expect(readFileSync(pidFilePath(home, name), 'utf8').trim()).toMatch(/^\d+$/);
        expect(existsSync(logFilePath(home, name))).toBe(true);
      }

      const second = await startEmbeddedServices(settings, { headless: true, temporalUiPort: await findFreePort(), s3ConsolePort: await findFreePort() });
      expect([second.temporal?.reused, second.s3?.reused, second.postgres?.reused]).toEqual([true, true, true]);
      await second.stop();
      expect(await postgresAnswers(settings.databaseUrl)).toBe(true);
    } finally {
      await first.stop();
    }
    expect(await isPortAccepting('127.0.0.1', port(`http://${settings.temporal.address}`))).toBe(false);
    expect(await isPortAccepting('127.0.0.1', port(settings.s3.endpoint ?? ''))).toBe(false);
    expect(await isPortAccepting('127.0.0.1', port(settings.databaseUrl))).toBe(false);
  });

  it('two callers starting at once share one set of services', async () => {
    const options = { temporal: false, postgres: false, s3ConsolePort: await findFreePort() };
    const [a, b] = await Promise.all([startEmbeddedServices(settings, options), startEmbeddedServices(settings, options)]);
    try {
      expect([a.s3?.reused, b.s3?.reused].sort()).toEqual([false, true]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(await isPortAccepting('127.0.0.1', port(settings.s3.endpoint ?? ''))).toBe(false);
  });

  it('stopEmbeddedServices stops kept-alive services recorded under home', async () => {
    await startEmbeddedServices(settings, { temporal: false, postgres: false, keepAlive: true, s3ConsolePort: await findFreePort() });
    expect(await isPortAccepting('127.0.0.1', port(settings.s3.endpoint ?? ''))).toBe(true);
    expect(await stopEmbeddedServices(home)).toEqual(['minio']);
    expect(await isPortAccepting('127.0.0.1', port(settings.s3.endpoint ?? ''))).toBe(false);
  });

  it('starts only what the caller asks for', async () => {
    const services = await startEmbeddedServices(settings, { temporal: false, postgres: false, s3ConsolePort: await findFreePort() });
    try {
      expect(services.temporal).toBeNull();
      expect(services.postgres).toBeNull();
      expect(services.s3?.reused).toBe(false);
    } finally {
      await services.stop();
    }
  });

  it('stops what did start when another service fails, and reports the failure', async () => {
    const saved = process.env.DETL_TEMPORAL_BIN;
    process.env.DETL_TEMPORAL_BIN = path.join(home, 'no-temporal-here');
    try {
      await expect(startEmbeddedServices(settings, { postgres: false, s3ConsolePort: await findFreePort() })).rejects.toThrow(/temporal binary was not found/);
    } finally {
      if (saved === undefined) delete process.env.DETL_TEMPORAL_BIN;
      else process.env.DETL_TEMPORAL_BIN = saved;
    }
    expect(await isPortAccepting('127.0.0.1', port(settings.s3.endpoint ?? ''))).toBe(false);
  });
});
