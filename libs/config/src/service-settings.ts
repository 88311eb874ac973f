import path from 'node:path';
import { z } from 'zod';

/** Where the services live. Embedded defaults unless the environment names real ones. */
export interface ServiceSettings {
  /** Folder for embedded service data, caches and local scratch space (`DETL_HOME`, default `./.detl`). */
  home: string;
  temporal: {
    /** `host:port` of the Temporal frontend (`DETL_TEMPORAL_ADDRESS`). */
    address: string;
    namespace: string;
    /** Task queue the workers poll (`DETL_TASK_QUEUE`). */
    taskQueue: string;
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
    home: path.resolve(cwd, e.DETL_HOME ?? '.detl'),
    temporal: {
      address: e.DETL_TEMPORAL_ADDRESS ?? `127.0.0.1:${EMBEDDED_PORTS.temporal}`,
      namespace: e.DETL_TEMPORAL_NAMESPACE ?? 'default',
      taskQueue: e.DETL_TASK_QUEUE ?? 'detl',
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
  }
  return env;
}
