/**
 * Runs the embedded PostgreSQL server in its own process, so the CLI and the worker can share it:
 *
 *   tsx libs/tracking/src/embedded-postgres-main.ts --data-dir .detl/postgres --port 55432
 *
 * Prints one line `embedded-postgres ready <url>` on stdout once it accepts connections, and exits
 * cleanly (flushing the data directory) on SIGINT or SIGTERM. Without `--data-dir` the database lives
 * in memory and is lost on exit.
 */
import { parseArgs } from 'node:util';
import { EMBEDDED_POSTGRES_READY_PREFIX, startEmbeddedPostgres } from './embedded-postgres';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'data-dir': { type: 'string' }, port: { type: 'string' } },
    strict: true,
  });
  const port = Number(values.port ?? '55432');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port: expected an integer between 0 and 65535, got "${values.port}"`);
  }
  const dataDir = values['data-dir'];
  const server = await startEmbeddedPostgres(dataDir === undefined ? { port } : { port, dataDir });
  process.stdout.write(`${EMBEDDED_POSTGRES_READY_PREFIX}${server.url}\n`);
  const shutdown = (): void => {
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`embedded-postgres: stop failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`embedded-postgres: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
