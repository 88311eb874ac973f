import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { CliError } from '../cli-error';
import { buildProgram } from '../main';

/** The repository's `bin/detl`, as users run it. */
export const DETL_BIN = path.resolve(__dirname, '../../../../bin/detl');

/** Exit code and output of one `bin/detl` run. */
export interface DetlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin/detl` without blocking this process: tests whose own event loop serves a service (an
 * embedded PostgreSQL) must not use spawnSync. Killed after `timeoutMs`.
 */
export function runDetl(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<DetlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(DETL_BIN, args, { env: options.env, cwd: options.cwd ?? os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Parses each argument list in-process with the real command definitions and expects a CliError
 * whose message contains the given text, and the exit code when one is given (flag validation
 * needs no child process).
 */
export async function expectCliErrors(cases: readonly (readonly [string[], string, number?])[]): Promise<void> {
  for (const [args, message, exitCode] of cases) {
    const error = await buildProgram()
      .parseAsync(['node', 'detl', ...args])
      .then(() => null, (caught: unknown) => caught);
    expect(error, args.join(' ')).toBeInstanceOf(CliError);
    expect((error as CliError).message).toContain(message);
    if (exitCode !== undefined) expect((error as CliError).exitCode, args.join(' ')).toBe(exitCode);
  }
}
