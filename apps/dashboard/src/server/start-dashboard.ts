import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import type { ObjectStore } from '@detl/storage';
import type { RunHistoryQueries } from '@detl/tracking';
import { createDashboardApp } from './dashboard-app';

/** Where `vite build` puts the browser bundle. */
export const CLIENT_DIST_DIR = path.resolve(__dirname, '../../dist/client');

/** Hosts that only this machine can reach; any other bind address needs a token. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

/** Why the dashboard refused to start (bad address, missing token). */
export class DashboardConfigError extends Error {
  override readonly name = 'DashboardConfigError';
}

/** Options of {@link startDashboard}. */
export interface StartDashboardOptions {
  queries: RunHistoryQueries;
  store: ObjectStore;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8780; 0 picks a free port. */
  port?: number;
  /** Required for any host other than loopback. */
  token?: string;
  /** Built client folder; default {@link CLIENT_DIST_DIR}. */
  clientDir?: string;
}

/** A running dashboard. */
export interface RunningDashboard {
  /** `http://host:port`, without the token. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Checks the bind address and token: loopback needs nothing, anything else needs a token of at least
 * 16 characters, since the dashboard then answers the network.
 */
export function checkDashboardBinding(host: string, token: string | undefined): void {
  if (token !== undefined && token.length < 16) throw new DashboardConfigError('the dashboard token must be at least 16 characters');
  if (!LOOPBACK_HOSTS.has(host) && token === undefined) {
    throw new DashboardConfigError(
      `--host ${host} makes the run history reachable from other machines; give --token <secret> (or DETL_DASHBOARD_TOKEN) as well, or leave --host at 127.0.0.1`,
    );
  }
}

/** Builds the browser bundle with Vite when it is missing (a fresh clone), so `detl dashboard` just works. */
export async function ensureClientBuilt(clientDir = CLIENT_DIST_DIR): Promise<void> {
  if (existsSync(path.join(clientDir, 'index.html'))) return;
  const { build } = await import('vite');
  await build({ configFile: path.resolve(__dirname, '../../vite.config.mts'), logLevel: 'warn' });
}

/** Starts the dashboard server; resolves once it listens. */
export async function startDashboard(options: StartDashboardOptions): Promise<RunningDashboard> {
  const host = options.host ?? '127.0.0.1';
  checkDashboardBinding(host, options.token);
  const app = createDashboardApp({
    queries: options.queries,
    store: options.store,
    clientDir: options.clientDir ?? CLIENT_DIST_DIR,
    ...(options.token === undefined ? {} : { token: options.token }),
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 8780 }, () => resolve(started));
    started.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Browsers keep connections alive; without this close() would wait for them.
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
