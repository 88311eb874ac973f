import { checkDashboardBinding, DashboardConfigError, ensureClientBuilt, startDashboard, CLIENT_DIST_DIR } from '@detl/dashboard';
import { createRunHistoryQueries } from '@detl/tracking';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CliError } from '../cli-error';
import { openRuntime } from '../runtime';

/** Flags of `detl dashboard`. */
export interface DashboardFlags {
  port: string;
  host: string;
  token?: string;
}

/**
 * `detl dashboard`: serves the run-history dashboard until interrupted, on the same services as every
 * other command (embedded ones started when the environment names none). Read-only.
 */
export async function dashboardCommand(flags: DashboardFlags): Promise<void> {
  if (!/^\d{1,5}$/.test(flags.port) || Number(flags.port) > 65_535) throw new CliError(`--port ${flags.port}: expected a port number from 0 to 65535`, 2);
  const host = flags.host.trim();
  if (host.length === 0) throw new CliError('--host: expected an address such as 127.0.0.1', 2);
  const token = flags.token ?? (process.env['DETL_DASHBOARD_TOKEN'] || undefined);
  try {
    // Refuse a network-facing address without a token before anything starts.
    checkDashboardBinding(host, token);
  } catch (error) {
    if (error instanceof DashboardConfigError) throw new CliError(error.message, 2);
    throw error;
  }
  if (!existsSync(path.join(CLIENT_DIST_DIR, 'index.html'))) console.error('building the dashboard page (once, a few seconds)…');
  await ensureClientBuilt();

  const runtime = await openRuntime({ temporal: false, s3: true });
  const queries = createRunHistoryQueries(runtime.settings.databaseUrl);
  try {
    let dashboard;
    try {
      dashboard = await startDashboard({ queries, store: runtime.store, host, port: Number(flags.port), ...(token === undefined ? {} : { token }) });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new CliError(`port ${flags.port} on ${host} is in use; choose another with --port (0 picks a free one)`);
      }
      throw error;
    }
    // With a token the printed link carries it once; the server swaps it for a cookie.
    console.log(`dashboard: ${dashboard.url}/${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`);
    console.log('read-only view of the run history; stop with Ctrl-C');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await dashboard.close();
  } finally {
    await queries.close();
    await runtime.close();
  }
}
