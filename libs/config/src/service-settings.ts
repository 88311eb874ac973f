import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_TRAINING_TASK_QUEUE, TASK_QUEUE_NAME_PATTERN } from './task-queues';

/** Where the services live. Embedded defaults unless the environment names real ones. */
export interface ServiceSettings {
  /**
   * Folder for embedded service data, caches and local scratch space: `DETL_HOME`, else the `.detl`
   * folder of the detl checkout around the current directory (see {@link findDetlHome}).
   */
  home: string;
  temporal: {
    /** `host:port` of the Temporal frontend (`DETL_TEMPORAL_ADDRESS`). */
    address: string;
    namespace: string;
    /** Main task queue: workflow tasks, bookkeeping, data and Grad-CAM (`DETL_TASK_QUEUE`). */
    taskQueue: string;
    /**
     * Task queue of the training activities (`DETL_TRAINING_TASK_QUEUE`); unset means `training`
     * (see `trainingTaskQueueOf`). Optional so settings built by hand keep their meaning.
     */
    trainingTaskQueue?: string;
  };
  /** PostgreSQL connection string (`DETL_DATABASE_URL`). */
  databaseUrl: string;
  s3: {
    /** S3 endpoint URL (`DETL_S3_ENDPOINT`); unset means AWS itself. */
    endpoint: string | undefined;
    region: string;
    bucket: string;
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    /** Path-style addressing, which MinIO and most S3-compatible servers need. */
    forcePathStyle: boolean;
  };
}

/** Ports the embedded services listen on (loopback only). */
export const EMBEDDED_PORTS = { temporal: 7233, temporalUi: 8233, postgres: 55432, s3: 9000, s3Console: 9001 } as const;

const envSchema = z.object({
  DETL_HOME: z.string().min(1).optional(),
  DETL_TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port').optional(),
  DETL_TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  DETL_TASK_QUEUE: z.string().min(1).optional(),
  DETL_TRAINING_TASK_QUEUE: z.string().regex(TASK_QUEUE_NAME_PATTERN, "letters, digits, '.', '_' or '-'").optional(),
  DETL_DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected postgresql://…').optional(),
  DETL_S3_ENDPOINT: z.url().optional(),
  DETL_S3_REGION: z.string().min(1).optional(),
  DETL_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not a valid S3 bucket name').optional(),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  DETL_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).optional(),
});

/** Credentials of the embedded S3 server (loopback only, never exposed). */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'detl-local', secretAccessKey: 'detl-local-secret' } as const;

/** Where {@link findDetlHome} found the home, and so whether a user needs to be told. */
export interface DetlHome {
  /** Absolute path of the home folder. */
  home: string;
  /**
   * `env`: `DETL_HOME` named it. `checkout`: the current directory is inside a detl checkout, whose
   * `.detl` it is. `installation`: the current directory is outside any checkout; the home is that
   * of the checkout this code runs from, which a user may not expect.
   */
  foundBy: 'env' | 'checkout' | 'installation';
}

/** The checkout this code runs from (libs/config/src → the repository root). */
const INSTALLATION_ROOT = path.resolve(__dirname, '../../..');

/**
 * The nearest folder at or above `start` that is a detl checkout: it has a package.json named
 * `detl`. Null when there is none up to the file system root.
 */
export function findCheckoutRoot(start: string): string | null {
  for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
    if (isCheckoutRoot(dir)) return dir;
    if (path.dirname(dir) === dir) return null;
  }
}

function isCheckoutRoot(dir: string): boolean {
  const manifest = path.join(dir, 'package.json');
  if (!existsSync(manifest)) return false;
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'detl';
  } catch {
    // A broken package.json of some other project is not a checkout; keep walking up.
    return false;
  }
}

/**
 * Finds the home as git finds its repository: `DETL_HOME` when set (relative to `cwd`), else
 * `<checkout>/.detl` of the checkout around `cwd`, so every command run anywhere in one checkout
 * shares one history and one set of services. Outside any checkout it is the home of the checkout
 * this code runs from (an `npm link`ed detl used from another folder), never a new `./.detl`.
 */
export function findDetlHome(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd(), installationRoot = INSTALLATION_ROOT): DetlHome {
  const named = env['DETL_HOME'];
  if (named !== undefined && named !== '') return { home: path.resolve(cwd, named), foundBy: 'env' };
  const checkout = findCheckoutRoot(cwd);
  if (checkout !== null) return { home: path.join(checkout, '.detl'), foundBy: 'checkout' };
  return { home: path.join(installationRoot, '.detl'), foundBy: 'installation' };
}

/**
 * The one line a command prints on stderr about its home, or null when the home is the obvious
 * one (named by `DETL_HOME`, or the checkout the user is working in).
 */
export function detlHomeNotice(found: DetlHome): string | null {
  if (found.foundBy !== 'installation') return null;
  return `detl: using ${found.home} (the home of the detl checkout this command runs from; you are outside it) — set DETL_HOME=<folder> to use another`;
}

/**
 * Reads service locations from the environment, falling back to the embedded defaults.
 * @throws Error naming the environment variable that is malformed.
 */
export function loadServiceSettings(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServiceSettings {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid environment\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const usesEmbeddedS3 = e.DETL_S3_ENDPOINT === undefined && e.AWS_ACCESS_KEY_ID === undefined;
  return {
    home: findDetlHome(env, cwd).home,
    temporal: {
      address: e.DETL_TEMPORAL_ADDRESS ?? `127.0.0.1:${EMBEDDED_PORTS.temporal}`,
      namespace: e.DETL_TEMPORAL_NAMESPACE ?? 'default',
      taskQueue: e.DETL_TASK_QUEUE ?? 'detl',
      trainingTaskQueue: e.DETL_TRAINING_TASK_QUEUE ?? DEFAULT_TRAINING_TASK_QUEUE,
    },
    databaseUrl: e.DETL_DATABASE_URL ?? `postgresql://postgres:postgres@127.0.0.1:${EMBEDDED_PORTS.postgres}/postgres`,
    s3: {
      endpoint: e.DETL_S3_ENDPOINT ?? (usesEmbeddedS3 ? `http://127.0.0.1:${EMBEDDED_PORTS.s3}` : undefined),
      region: e.DETL_S3_REGION ?? 'us-east-1',
      bucket: e.DETL_S3_BUCKET ?? 'detl',
      accessKeyId: e.AWS_ACCESS_KEY_ID ?? (usesEmbeddedS3 ? EMBEDDED_S3_CREDENTIALS.accessKeyId : undefined),
      secretAccessKey: e.AWS_SECRET_ACCESS_KEY ?? (usesEmbeddedS3 ? EMBEDDED_S3_CREDENTIALS.secretAccessKey : undefined),
      forcePathStyle: (e.DETL_S3_FORCE_PATH_STYLE ?? 'true') === 'true',
    },
  };
}

/**
 * The environment variables that make {@link loadServiceSettings} return these settings: how a
 * parent process points a worker, a CLI or a test's child process at specific services.
 */
export function serviceEnvironment(settings: Pick<ServiceSettings, 'home' | 'databaseUrl' | 's3'> & { temporal?: ServiceSettings['temporal'] }): Record<string, string> {
  const env: Record<string, string> = {
    DETL_HOME: settings.home,
    DETL_DATABASE_URL: settings.databaseUrl,
    DETL_S3_BUCKET: settings.s3.bucket,
    DETL_S3_REGION: settings.s3.region,
    DETL_S3_FORCE_PATH_STYLE: String(settings.s3.forcePathStyle),
  };
  if (settings.s3.endpoint !== undefined) env.DETL_S3_ENDPOINT = settings.s3.endpoint;
  if (settings.s3.accessKeyId !== undefined) env.AWS_ACCESS_KEY_ID = settings.s3.accessKeyId;
  if (settings.s3.secretAccessKey !== undefined) env.AWS_SECRET_ACCESS_KEY = settings.s3.secretAccessKey;
  if (settings.temporal) {
    env.DETL_TEMPORAL_ADDRESS = settings.temporal.address;
    env.DETL_TEMPORAL_NAMESPACE = settings.temporal.namespace;
    env.DETL_TASK_QUEUE = settings.temporal.taskQueue;
    if (settings.temporal.trainingTaskQueue !== undefined) env.DETL_TRAINING_TASK_QUEUE = settings.temporal.trainingTaskQueue;
  }
  return env;
}
