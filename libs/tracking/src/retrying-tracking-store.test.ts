import { parseExperimentConfig } from '@detl/config';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeDatabaseError, isTransientDatabaseError, withTransientRetries } from './retrying-tracking-store';
import { createTestDatabase, type TestDatabase } from './test-database';
import { createTrackingStore } from './tracking-store';
import { TrackingError, type TrackingStore } from './tracking-types';

/**
 * A TCP proxy in front of the test database that can drop every connection and refuse new ones,
 * which is what a client sees when PostgreSQL stops: the fault is injected at the wire, so the
 * errors are the real ones of node-postgres, the Prisma adapter and Prisma.
 */
class CuttableProxy {
  private server = net.createServer((socket) => this.accept(socket));
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(port = 0): Promise<void> {
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Resets every open connection and closes the port: new connections are refused until {@link listen}. */
  async cut(): Promise<void> {
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(from);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
      from.pipe(to);
    }
  }
}

let database: TestDatabase;
let proxy: CuttableProxy;
let direct: TrackingStore;
let throughProxy: TrackingStore;
const config = parseExperimentConfig({ name: 'retry-test', seed: 3 });

beforeAll(async () => {
  database = await createTestDatabase();
  const url = new URL(database.url);
  proxy = new CuttableProxy({ host: url.hostname, port: Number(url.port || 5432) });
  await proxy.listen();
  url.port = String(proxy.port);
  direct = createTrackingStore(database.url);
  throughProxy = createTrackingStore(url.toString());
});

afterAll(async () => {
  await Promise.allSettled([throughProxy?.close(), direct?.close()]);
  await proxy?.cut().catch(() => undefined);
  await database?.drop();
});

function epoch(experimentId: string, n: number) {
  return {
    experimentId,
    task: 'pretrain',
    attempt: 1,
    epoch: n,
    trainLoss: 0.5,
    trainAccuracy: 0.7,
    learningRate: 1e-3,
    durationMs: 100,
    imagesPerSecond: 10,
    checkpointKey: `experiments/x/pretrain/epoch-${n}`,
  };
}

describe('withTransientRetries', () => {
  it('waits out a database that drops its connections and refuses new ones for 2 s, then writes exactly once', async () => {
    const logs: string[] = [];
    const tracking = withTransientRetries(throughProxy, { initialDelayMs: 200, maxDelayMs: 1_000, budgetMs: 30_000, log: (line) => logs.push(line) });
    const experiment = await tracking.createExperiment({ workflowId: 'wf-outage', name: 'retry-test', config, configHash: 'h', seed: 3 });
    await tracking.recordEpoch(epoch(experiment.id, 1));

    await proxy.cut();
    const cutAt = Date.now();
    const back = new Promise<void>((resolve) => setTimeout(() => void proxy.listen(proxy.port).then(resolve), 2_000));
    const written = await tracking.recordEpoch(epoch(experiment.id, 2));
    await back;

    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(1_900);
    expect(written.epoch).toBe(2);
    const rows = (await direct.getExperiment(experiment.id))?.epochMetrics.map((row) => [row.task, row.attempt, row.epoch]);
    expect(rows).toEqual([
      ['pretrain', 1, 1],
      ['pretrain', 1, 2],
    ]);
    expect(logs.filter((line) => / retry \d+ in /.test(line)).length).toBeGreaterThanOrEqual(2);
    expect(logs.every((line) => line.startsWith('tracking.recordEpoch '))).toBe(true);
    expect(logs.at(-1)).toMatch(/^tracking\.recordEpoch succeeded after \d+ retries/);
  });

  it('gives up with the database error once the budget is spent', async () => {
    const logs: string[] = [];
    const tracking = withTransientRetries(throughProxy, { initialDelayMs: 100, maxDelayMs: 300, budgetMs: 1_500, log: (line) => logs.push(line) });
    const experiment = await direct.createExperiment({ workflowId: 'wf-gone', name: 'retry-test', config, configHash: 'h', seed: 3 });
    await proxy.cut();
    try {
      const started = Date.now();
      const error = await tracking.setDatasetManifest(experiment.id, 'manifests/a.json').then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(isTransientDatabaseError(error)).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(logs.at(-1)).toMatch(/^tracking\.setDatasetManifest failed \(.*\); giving up after \d+ attempts/);
    } finally {
      await proxy.listen(proxy.port);
    }
  });

  it('does not retry refusals: invalid argument, not found and conflict fail on the first attempt', async () => {
    const logs: string[] = [];
    let calls = 0;
    // The real store, counting how often the decorator reaches it.
    const counted = new Proxy(throughProxy, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (...args: unknown[]) => (calls++, (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
      },
    });
    const tracking = withTransientRetries(counted, { log: (line) => logs.push(line) });
    const experiment = await tracking.createExperiment({ workflowId: 'wf-refusals', name: 'retry-test', config, configHash: 'h', seed: 3 });
    calls = 0;
    const refusals = [
      tracking.recordEpoch({ ...epoch('not-a-uuid', 1) }),
      tracking.recordEpoch(epoch('00000000-0000-4000-8000-000000000000', 1)),
      tracking.createExperiment({ workflowId: 'wf-refusals', name: 'retry-test', config, configHash: 'other', seed: 3 }),
      tracking.markExperimentRunning(experiment.id).then(() => tracking.markExperimentFinished(experiment.id, { status: 'failed' })).then(() => tracking.markExperimentRunning(experiment.id)),
    ];
    const codes = await Promise.all(refusals.map((call) => call.then(() => 'resolved', (error: unknown) => (error instanceof TrackingError ? error.code : String(error)))));
    expect(codes).toEqual(['invalid_argument', 'not_found', 'conflict', 'conflict']);
    expect(calls).toBe(6);
    expect(logs).toEqual([]);
  });
});

describe('isTransientDatabaseError', () => {
  it('accepts connection loss as Prisma reports it and rejects everything else', () => {
    const adapterError = (cause: Record<string, unknown>, code = 'P2039') => Object.assign(new Error('Invalid invocation'), { code, meta: { driverAdapterError: { name: 'DriverAdapterError', cause } } });
    // Shapes recorded from Prisma 7 + adapter-pg against PostgreSQL 15 stopped with `pg_ctl stop -m fast`.
    expect(isTransientDatabaseError(adapterError({ kind: 'postgres', code: '57P01', message: 'terminating connection due to administrator command' }))).toBe(true);
    expect(isTransientDatabaseError(adapterError({ kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 }, 'P1001'))).toBe(true);
    expect(isTransientDatabaseError(adapterError({ kind: 'ConnectionClosed' }, 'P1017'))).toBe(true);
    expect(isTransientDatabaseError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientDatabaseError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransientDatabaseError(new Error('wrapped', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }))).toBe(true);

    expect(isTransientDatabaseError(adapterError({ kind: 'UniqueConstraintViolation' }, 'P2002'))).toBe(false);
    expect(isTransientDatabaseError(adapterError({ kind: 'postgres', code: '22P02' }))).toBe(false);
    expect(isTransientDatabaseError(new TrackingError('not_found', 'experiment x does not exist', { cause: adapterError({ kind: 'ConnectionClosed' }) }))).toBe(false);
    expect(isTransientDatabaseError(new Error('something else'))).toBe(false);
  });

  it('describes Prisma errors by code and driver reason, not by the call-site excerpt', () => {
    const error = Object.assign(new Error('\nInvalid `prisma.experiment.updateMany()` invocation in\n/x.ts:240:46'), {
      code: 'P2039',
      meta: { driverAdapterError: { cause: { kind: 'postgres', code: '57P01', message: 'terminating connection due to administrator command' } } },
    });
    expect(describeDatabaseError(error)).toBe('P2039 postgres 57P01: terminating connection due to administrator command');
    expect(describeDatabaseError(Object.assign(new Error('x'), { code: 'P1001', meta: { driverAdapterError: { cause: { kind: 'DatabaseNotReachable' } } } }))).toBe('P1001 DatabaseNotReachable');
  });
});
