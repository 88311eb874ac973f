import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * `npm run bench -- <name> [args…]`: runs `tools/bench/<name>.ts`, whose default export returns the
 * results (peers measured side by side in the same invocation, with ratios), and writes them with
 * the machine's description to `bench/results/<name>.json`.
 */
export interface BenchmarkModule {
  default: (args: string[]) => Promise<Record<string, unknown>>;
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const available = readdirSync(__dirname)
    .filter((file) => file.endsWith('.ts') && file !== 'run.ts' && !file.endsWith('.test.ts'))
    .map((file) => file.slice(0, -3));
  if (!name || !available.includes(name)) {
    console.error(`usage: npm run bench -- <${available.join('|')}> [args]`);
    process.exit(2);
  }
  const module = (await import(path.join(__dirname, `${name}.ts`))) as BenchmarkModule;
  const started = new Date();
  const results = await module.default(args);
  const record = {
    benchmark: name,
    startedAt: started.toISOString(),
    durationSeconds: (Date.now() - started.getTime()) / 1000,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      // Other work on the machine skews absolute numbers; peers run side by side, so ratios hold better.
      loadAverageAtStart: os.loadavg(),
    },
    ...results,
  };
  const dir = path.resolve(__dirname, '../../bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
