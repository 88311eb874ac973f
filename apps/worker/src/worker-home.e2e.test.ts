import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServiceSettings } from '@detl/config';
import { homeOwnedServices, startEmbeddedServices, type EmbeddedServices } from '@detl/services';

// A worker started on its own with only DETL_HOME must use that home's embedded services, wherever
// they listen, and never whatever answers on the default ports (another home's, perhaps).
const WORKER_MAIN = path.resolve(__dirname, 'main.ts');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;
const homes: string[] = [];
let services: EmbeddedServices | undefined;

afterAll(async () => {
  await services?.stop();
  await Promise.all(homes.map((home) => rm(home, { recursive: true, force: true })));
});

/** The environment of a user who names no services: only DETL_HOME. */
function homeEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(DETL_|AWS_)/.test(name)) env[name] = value;
  return { ...env, DETL_HOME: home };
}

/** Runs the worker until it prints its first line on stdout (or exits), then stops it. */
function firstWords(env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) child.kill('SIGTERM');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

describe('a worker started alone with only DETL_HOME', () => {
  it("polls its own home's Temporal at the recorded port, and refuses to start when the home's services are not running", async () => {
    for (const name of ['own', 'empty']) homes.push(await mkdtemp(path.join(os.tmpdir(), `detl-worker-home-${name}-`)));
    const [own, empty] = homes as [string, string];
    const env = homeEnv(own);
    services = await startEmbeddedServices(loadServiceSettings(env), { headless: true, homeOwned: homeOwnedServices(env) });

    const started = await firstWords(env);
    // Both of the home's queues (a plain worker serves the main and the training queue), at the home's recorded address.
    expect(started.stdout).toMatch(/polling task queues "detl" \(workflows, bookkeeping, data, Grad-CAM\) and "training" \(training, \d+ at once\)/);
    expect(started.stdout).toContain(` at ${services.settings.temporal.address}`);

    const refused = await firstWords(homeEnv(empty));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`the embedded Temporal, PostgreSQL, MinIO of ${empty} are not running; start them with \`detl services start\``);
    expect(refused.stdout).toBe('');
  }, 300_000);
});
