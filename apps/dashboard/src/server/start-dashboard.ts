import { existsSync, readdirSync, statSync } from 'node:fs';
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

const DASHBOARD_DIR = path.resolve(__dirname, '../..');

/**
 * What the browser bundle is built from (Vite's root, its config, and the Node-free shared modules the
 * client imports): a change to any of them after a build makes the built bundle stale.
 */
export const CLIENT_SOURCES: readonly string[] = [
  path.join(DASHBOARD_DIR, 'src/client'),
  path.join(DASHBOARD_DIR, 'src/api-types.ts'),
  path.join(DASHBOARD_DIR, 'vite.config.mts'),
  path.resolve(DASHBOARD_DIR, '../../libs/config/src'),
  path.resolve(DASHBOARD_DIR, '../../libs/tracking/src/json-shapes.ts'),
  // @detl/ml/browser (the screening page's Grad-CAM) and the files it imports.
  path.resolve(DASHBOARD_DIR, '../../libs/ml/src/browser.ts'),
  path.resolve(DASHBOARD_DIR, '../../libs/ml/src/evaluation/grad-cam.ts'),
  path.resolve(DASHBOARD_DIR, '../../libs/ml/src/evaluation/localization.ts'),
  path.resolve(DASHBOARD_DIR, '../../libs/ml/src/core/models.ts'),
  path.resolve(DASHBOARD_DIR, '../../libs/ml/src/core/scoring.ts'),
];

function newestModification(file: string): number {
  if (!existsSync(file)) return 0;
  const stat = statSync(file);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(file).reduce((newest, entry) => Math.max(newest, newestModification(path.join(file, entry))), stat.mtimeMs);
}

/**
 * Whether the bundle whose entry is `indexFile` is missing or older than any of `sources` (files or
 * folders, searched recursively; absent ones, as in an installed package without sources, count as old).
 */
export function isClientBuildStale(indexFile: string, sources: readonly string[] = CLIENT_SOURCES): boolean {
  if (!existsSync(indexFile)) return true;
  const built = statSync(indexFile).mtimeMs;
  return sources.some((source) => newestModification(source) > built);
}

/**
 * Builds the browser bundle with Vite when it is missing (a fresh clone) or older than its sources (a
 * checkout updated since the last build, which would otherwise serve the old client), so `detl
 * dashboard` just works. A `clientDir` other than the default is used as it is.
 */
export async function ensureClientBuilt(clientDir = CLIENT_DIST_DIR): Promise<void> {
  const index = path.join(clientDir, 'index.html');
  if (clientDir === CLIENT_DIST_DIR ? !isClientBuildStale(index) : existsSync(index)) return;
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
