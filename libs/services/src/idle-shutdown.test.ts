import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ServiceSettings } from '@detl/config';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { postgresAnswers } from './embedded-postgres-process';
import { startEmbeddedServices, stopEmbeddedServices } from './embedded-services';
import {
  idleWatchdogRunning,
  liveServicesClients,
  pinServices,
  registerServicesClient,
  runIdleWatchdog,
  servicesIdleTimeoutMs,
  stopIdleWatchdog,
} from './idle-shutdown';
import { findFreePort } from './net';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-idle-'));
});
afterEach(async () => {
  await stopIdleWatchdog(home);
  await stopEmbeddedServices(home);
  await rm(home, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('servicesIdleTimeoutMs', () => {
  it('defaults to 30 minutes, takes minutes, and names the variable when the value is bad', () => {
    expect(servicesIdleTimeoutMs({})).toBe(30 * 60_000);
    expect(servicesIdleTimeoutMs({ DETL_SERVICES_IDLE_MINUTES: '0' })).toBe(0);
    expect(servicesIdleTimeoutMs({ DETL_SERVICES_IDLE_MINUTES: '2.5' })).toBe(150_000);
    expect(() => servicesIdleTimeoutMs({ DETL_SERVICES_IDLE_MINUTES: 'soon' })).toThrow(/DETL_SERVICES_IDLE_MINUTES=soon/);
    expect(() => servicesIdleTimeoutMs({ DETL_SERVICES_IDLE_MINUTES: '-1' })).toThrow(/>= 0/);
  });
});

describe('runIdleWatchdog', () => {
  it('waits while a client process lives and stops the services once none has for the idle time', async () => {
    const client = spawn('sleep', ['1.5']);
    const clientExited = new Promise<void>((resolve) => client.once('exit', () => resolve()));
    registerServicesClient(home, client.pid as number);
    const stops: number[] = [];
    const started = Date.now();
    const outcome = await runIdleWatchdog({
      home,
      idleTimeoutMs: 500,
      pollMs: 50,
      stopServices: async () => {
        stops.push(Date.now());
        return ['postgres'];
      },
    });
    await clientExited;
    expect(outcome).toBe('stopped');
    expect(stops).toHaveLength(1);
    // Not before the client's 1.5 s plus the 0.5 s idle time.
    expect((stops[0] as number) - started).toBeGreaterThanOrEqual(1_900);
    expect(liveServicesClients(home)).toEqual([]);
  });

  it('ignores clients that died without releasing (a SIGKILLed command never pins the services)', async () => {
    const client = spawn('sleep', ['60']);
    registerServicesClient(home, client.pid as number);
    client.kill('SIGKILL');
    await new Promise<void>((resolve) => client.once('exit', () => resolve()));
    let stopped = false;
    await runIdleWatchdog({ home, idleTimeoutMs: 100, pollMs: 20, stopServices: async () => ((stopped = true), []) });
    expect(stopped).toBe(true);
  });

  it('leaves services started on purpose (detl services start) alone', async () => {
    pinServices(home, true);
    let stopped = false;
    const outcome = await runIdleWatchdog({ home, idleTimeoutMs: 0, pollMs: 20, stopServices: async () => ((stopped = true), []) });
    expect(outcome).toBe('pinned');
    expect(stopped).toBe(false);
  });
});

describe('startEmbeddedServices with an idle timeout', () => {
  it('keeps PostgreSQL up after the command releases it, then the detached watchdog stops it when idle', async () => {
    const settings: ServiceSettings = {
      home,
      temporal: { address: `127.0.0.1:${await findFreePort()}`, namespace: 'default', taskQueue: 'detl' },
      databaseUrl: `postgresql://postgres:postgres@127.0.0.1:${await findFreePort()}/postgres`,
      s3: { endpoint: undefined, region: 'us-east-1', bucket: 'detl', accessKeyId: undefined, secretAccessKey: undefined, forcePathStyle: true },
    };
    const services = await startEmbeddedServices(settings, { temporal: false, s3: false, idleTimeoutMs: 3_000 });
    expect(idleWatchdogRunning(home)).toBe(true);
    expect(liveServicesClients(home)).toEqual([process.pid]);
    await services.stop();
    expect(liveServicesClients(home)).toEqual([]);
    // Released, not stopped: the next command finds it running.
    expect(await postgresAnswers(settings.databaseUrl)).toBe(true);

    const deadline = Date.now() + 30_000;
    while ((await postgresAnswers(settings.databaseUrl, 1_000)) && Date.now() < deadline) await sleep(250);
    expect(await postgresAnswers(settings.databaseUrl, 1_000)).toBe(false);
    while (idleWatchdogRunning(home) && Date.now() < deadline) await sleep(100);
    expect(idleWatchdogRunning(home)).toBe(false);
  }, 60_000);
});
