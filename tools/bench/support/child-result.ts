// Not a benchmark: run.ts lists the `.ts` files of tools/bench itself, so shared code lives here.
import { spawn } from 'node:child_process';
import path from 'node:path';

/**
 * Runs a benchmark child (a detl child through tsx, or a Python peer) and parses the JSON it prints:
 * the line starting with `marker`, else (Python peers print bare JSON) the first line starting with `{`.
 * @throws Error naming the command and script with the last 25 lines of stderr when the child fails
 * or prints no result.
 */
export function runChildForResult<T>(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; marker: string }): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const lines = stdout.split('\n');
      const line = lines.find((l) => l.startsWith(options.marker)) ?? lines.find((l) => l.startsWith('{'));
      if (code !== 0 || !line) {
        reject(new Error(`${path.basename(command)} ${path.basename(args[0] ?? '')} exited with ${code ?? signal}:\n${stderr.split('\n').slice(-25).join('\n')}`));
        return;
      }
      resolve(JSON.parse(line.startsWith(options.marker) ? line.slice(options.marker.length) : line) as T);
    });
  });
}
