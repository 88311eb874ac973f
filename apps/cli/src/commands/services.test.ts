import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import { isPortAccepting } from '@detl/services';
import { createTrackingStore } from '@detl/tracking';
import { runDetl } from '../test-support/run-detl';

// Two homes at once, as two checkouts of a user are: each `detl` command talks only to the embedded
// services of its own home, even though both prefer the same default ports.

const homes: string[] = [];

/** The environment of a user who names no services: only DETL_HOME. */
function homeEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(DETL_|AWS_)/.test(name)) env[name] = value;
  }
  return { ...env, DETL_HOME: home };
}

function field(stdout: string, label: string): string {
  const line = stdout.split('\n').find((text) => text.startsWith(label));
  if (line === undefined) throw new Error(`no "${label}" line in:\n${stdout}`);
  return line.slice(label.length).trim().split(' ')[0] ?? '';
}

afterAll(async () => {
  await Promise.all(homes.map((home) => runDetl(['services', 'stop'], { env: homeEnv(home), timeoutMs: 60_000 })));
  await Promise.all(homes.map((home) => rm(home, { recursive: true, force: true })));
});

describe('detl services under two homes', () => {
  it('starts separate services for each home and every command sees only its own home\'s runs', async () => {
    for (const name of ['a', 'b']) homes.push(await mkdtemp(path.join(os.tmpdir(), `detl-two-homes-${name}-`)));
    const [homeA, homeB] = homes as [string, string];

    const startA = await runDetl(['services', 'start'], { env: homeEnv(homeA), timeoutMs: 180_000 });
    expect(startA.stderr).toBe('');
    expect(startA.code).toBe(0);
    const startB = await runDetl(['services', 'start'], { env: homeEnv(homeB), timeoutMs: 180_000 });
    expect(startB.code).toBe(0);
    const a = { temporal: field(startA.stdout, 'Temporal'), postgres: field(startA.stdout, 'PostgreSQL'), s3: field(startA.stdout, 'S3 (MinIO)') };
    const b = { temporal: field(startB.stdout, 'Temporal'), postgres: field(startB.stdout, 'PostgreSQL'), s3: field(startB.stdout, 'S3 (MinIO)') };
    expect(b.temporal).not.toBe(a.temporal);
    expect(b.postgres).not.toBe(a.postgres);
    expect(b.s3).not.toBe(a.s3);

    // A run recorded in A's database.
    const tracking = createTrackingStore(a.postgres);
    try {
      await tracking.createExperiment({ workflowId: 'only-in-home-a', name: 'only-in-home-a', config: parseExperimentConfig({ name: 'only-in-home-a' }), configHash: 'h', seed: 1 });
    } finally {
      await tracking.close();
    }
    const [listA, listB] = await Promise.all([
      runDetl(['runs', 'list', '--json'], { env: homeEnv(homeA) }),
      runDetl(['runs', 'list', '--json'], { env: homeEnv(homeB) }),
    ]);
    expect(listA.code).toBe(0);
    expect(listB.code).toBe(0);
    expect(listA.stdout).toContain('only-in-home-a');
    expect(listB.stdout).not.toContain('only-in-home-a');

    // A second start in a home finds that home's services again.
    const againB = await runDetl(['services', 'start'], { env: homeEnv(homeB), timeoutMs: 120_000 });
    expect(field(againB.stdout, 'PostgreSQL')).toBe(b.postgres);
    expect(field(againB.stdout, 'Temporal')).toBe(b.temporal);

    // Stopping B leaves A's services running.
    const stopB = await runDetl(['services', 'stop'], { env: homeEnv(homeB), timeoutMs: 60_000 });
    expect(stopB.stdout).toContain('stopped: temporal, minio, postgres');
    const port = (url: string) => Number(new URL(url).port);
    expect(await isPortAccepting('127.0.0.1', port(b.postgres))).toBe(false);
    expect(await isPortAccepting('127.0.0.1', port(a.postgres))).toBe(true);
    expect(await isPortAccepting('127.0.0.1', port(a.s3))).toBe(true);
  }, 600_000);
});
