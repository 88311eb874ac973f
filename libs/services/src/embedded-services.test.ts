import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ServiceSettings } from '@detl/config';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedPostgresEntry, postgresAnswers } from './embedded-postgres-process';
import { resolveHomeServices, startEmbeddedServices, stopEmbeddedServices, usesEmbeddedServices } from './embedded-services';
import { serviceRecordPath, type ServiceRecord } from './home-services';
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

describe('two homes at once', () => {
  // Both homes prefer the same ports, as two checkouts using the defaults do; the second must run
  // its own services on other ports, never reuse the first home's.
  it.skipIf(!pgliteEntryExists)('each home talks only to its own services, recorded in the home, and moves off ports held by others', async () => {
    const newHome = (name: string) => mkdtemp(path.join(os.tmpdir(), `detl-home-${name}-`));
    const [homeA, homeB, homeC] = await Promise.all([newHome('a'), newHome('b'), newHome('c')]);
    const preferred = {
      ...settings,
      temporal: { ...settings.temporal, address: `127.0.0.1:${await findFreePort()}` },
      databaseUrl: `postgresql://postgres:postgres@127.0.0.1:${await findFreePort()}/postgres`,
      s3: { ...settings.s3, endpoint: `http://127.0.0.1:${await findFreePort()}` },
    };
    const options = { headless: true, homeOwned: { temporal: true, s3: true, postgres: true }, temporalUiPort: await findFreePort(), s3ConsolePort: await findFreePort() };
    // A program that is no service at all holds C's preferred PostgreSQL port.
    const foreign = net.createServer((socket) => socket.destroy());
    const foreignPort = await findFreePort();
    await new Promise<void>((resolve) => foreign.listen(foreignPort, '127.0.0.1', resolve));
    const started: Array<{ stop(): Promise<void> }> = [];
    try {
      const a = await startEmbeddedServices({ ...preferred, home: homeA }, options);
      started.push(a);
      const b = await startEmbeddedServices({ ...preferred, home: homeB }, options);
      started.push(b);
      // A got the preferred ports; B found them taken by A's services and started its own elsewhere.
      expect(a.settings.temporal.address).toBe(preferred.temporal.address);
      expect(a.settings.databaseUrl).toBe(preferred.databaseUrl);
      expect(a.settings.s3.endpoint).toBe(preferred.s3.endpoint);
      expect([b.temporal?.reused, b.s3?.reused, b.postgres?.reused]).toEqual([false, false, false]);
      expect(b.settings.temporal.address).not.toBe(a.settings.temporal.address);
      expect(b.settings.databaseUrl).not.toBe(a.settings.databaseUrl);
      expect(b.settings.s3.endpoint).not.toBe(a.settings.s3.endpoint);

      // The records in each home name that home's processes and ports.
      const recorded = (home: string, name: string) => JSON.parse(readFileSync(serviceRecordPath(home, name), 'utf8')) as ServiceRecord;
      expect(recorded(homeB, 'temporal').port).toBe(port(`http://${b.settings.temporal.address}`));
      expect(recorded(homeB, 'postgres').port).toBe(port(b.settings.databaseUrl));
      expect(recorded(homeB, 'minio').port).toBe(port(b.settings.s3.endpoint ?? ''));
      expect(recorded(homeA, 'postgres').pid).toBe(a.postgres?.pid);

      // Separate databases: a table made through A's server is not in B's.
      const query = async (url: string, sql: string) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          return await client.query(sql);
        } finally {
          await client.end();
        }
      };
      await query(a.settings.databaseUrl, 'CREATE TABLE only_in_a (id int)');
      expect((await query(b.settings.databaseUrl, "SELECT to_regclass('only_in_a') AS t")).rows[0]).toEqual({ t: null });
      expect((await query(a.settings.databaseUrl, "SELECT to_regclass('only_in_a') AS t")).rows[0]).toEqual({ t: 'only_in_a' });

      // A later command of either home finds its own services again, from the preferred settings.
      const againB = await startEmbeddedServices({ ...preferred, home: homeB }, options);
      expect([againB.temporal?.reused, againB.s3?.reused, againB.postgres?.reused]).toEqual([true, true, true]);
      expect(againB.settings).toEqual(b.settings);
      expect(resolveHomeServices({ ...preferred, home: homeA })).toEqual(a.settings);
      expect(resolveHomeServices({ ...preferred, home: homeB })).toEqual(b.settings);
      // A home whose services are not running does not fall back to the ports others hold.
      expect(() => resolveHomeServices({ ...preferred, home: homeC })).toThrow(/Temporal, PostgreSQL, MinIO of .* are not running/);

      // A port held by a program that is no PostgreSQL at all: the home's server moves aside.
      const c = await startEmbeddedServices({ ...preferred, home: homeC, databaseUrl: `postgresql://postgres:postgres@127.0.0.1:${foreignPort}/postgres` }, { ...options, temporal: false, s3: false });
      started.push(c);
      expect(c.postgres?.reused).toBe(false);
      expect(port(c.settings.databaseUrl)).not.toBe(foreignPort);
      expect(await postgresAnswers(c.settings.databaseUrl)).toBe(true);
    } finally {
      await Promise.all(started.map((services) => services.stop()));
      await new Promise<void>((resolve) => foreign.close(() => resolve()));
      await Promise.all([homeA, homeB, homeC].map((home) => rm(home, { recursive: true, force: true })));
    }
  }, 180_000);
});
