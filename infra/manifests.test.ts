import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

// No Docker engine or cluster is available to run these manifests, so this checks what can be
// checked without one: they parse, they reference things that exist, and every detl setting they
// pass is one the code reads.
const infraDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(infraDir, '..');

type Doc = Record<string, unknown>;
const asDoc = (value: unknown): Doc => (value !== null && typeof value === 'object' ? (value as Doc) : {});

// libs/config's TASK_QUEUE_NAME_PATTERN, read from its source (infra imports no code): the names the
// worker and `detl worker --queue` accept.
const TASK_QUEUE_NAME = (() => {
  const source = readFileSync(path.join(repoRoot, 'libs/config/src/task-queues.ts'), 'utf8');
  const literal = /export const TASK_QUEUE_NAME_PATTERN = \/(.+)\/;/.exec(source)?.[1];
  if (!literal) throw new Error('TASK_QUEUE_NAME_PATTERN not found in libs/config/src/task-queues.ts');
  return new RegExp(literal);
})();

/**
 * The queue plan of the worker deployments, whatever the file: each worker polls DETL_WORKER_QUEUES,
 * the main-queue worker exactly the main queue, the CPU training worker exactly the runs' default
 * training queue, the GPU worker a valid training queue of its own that no CPU worker polls.
 */
function expectQueuePlan(env: { main: Doc; training: Doc; gpu: Doc }, settings: Doc): void {
  for (const [role, values] of Object.entries(env)) {
    expect(String(values.DETL_WORKER_QUEUES), `${role} worker's DETL_WORKER_QUEUES`).toMatch(TASK_QUEUE_NAME);
    expect(String(values.DETL_WORKER_QUEUES), `${role} worker polls one queue`).not.toContain(',');
  }
  expect(env.main.DETL_WORKER_QUEUES).toBe(settings.DETL_TASK_QUEUE);
  expect(env.training.DETL_WORKER_QUEUES).toBe(settings.DETL_TRAINING_TASK_QUEUE);
  expect(env.gpu.DETL_WORKER_QUEUES).not.toBe(settings.DETL_TASK_QUEUE);
  expect(env.gpu.DETL_WORKER_QUEUES).not.toBe(settings.DETL_TRAINING_TASK_QUEUE);
  // Training workers run one training at a time, which then gets the whole container's cores (or the GPU).
  expect(env.training.DETL_WORKER_SLOTS).toBe('1');
  expect(env.gpu.DETL_WORKER_SLOTS).toBe('1');
  expect(env.gpu.DETL_TF_BACKEND).toBe('tensorflow-gpu');
  expect(env.main.DETL_TF_BACKEND).toBeUndefined();
  expect(env.training.DETL_TF_BACKEND).toBeUndefined();
}

/** Every DETL_* / AWS_* variable libs/config reads, plus the worker's own DETL_WORKER_SLOTS. */
function knownSettings(): Set<string> {
  const source = readFileSync(path.join(repoRoot, 'libs/config/src/service-settings.ts'), 'utf8');
  const names = new Set(source.match(/\b(?:DETL|AWS)_[A-Z0-9_]+\b/g) ?? []);
  const workerMain = path.join(repoRoot, 'apps/worker/src/main.ts');
  if (existsSync(workerMain)) for (const name of readFileSync(workerMain, 'utf8').match(/\bDETL_[A-Z0-9_]+\b/g) ?? []) names.add(name);
  else names.add('DETL_WORKER_SLOTS');
  return names;
}

describe('infra/docker-compose.yml', () => {
  const compose = asDoc(parse(readFileSync(path.join(infraDir, 'docker-compose.yml'), 'utf8'), { merge: true }));
  const services = asDoc(compose.services);

  const workers = ['main-worker', 'training-worker', 'gpu-worker'];
  const envOf = (service: string) => asDoc(asDoc(services[service]).environment);

  it('defines Temporal, both databases, MinIO, the migration and a worker per task queue', () => {
    expect(Object.keys(services).sort()).toEqual(['detl-db', 'gpu-worker', 'main-worker', 'migrate', 'minio', 'temporal', 'temporal-db', 'temporal-ui', 'training-worker']);
  });

  it('builds the CPU workers from infra/worker.Dockerfile with the repository as context', () => {
    for (const service of ['main-worker', 'training-worker']) {
      const build = asDoc(asDoc(services[service]).build);
      expect(build.dockerfile, service).toBe('infra/worker.Dockerfile');
      expect(path.resolve(infraDir, String(build.context))).toBe(repoRoot);
      expect(existsSync(path.join(repoRoot, String(build.dockerfile)))).toBe(true);
    }
  });

  it('splits the workers by task queue: main queue, CPU training queue, GPU training queue', () => {
    expectQueuePlan({ main: envOf('main-worker'), training: envOf('training-worker'), gpu: envOf('gpu-worker') }, envOf('main-worker'));
    // Every worker sees the same main and training queue names, so runs started from any of them route alike.
    for (const service of workers) {
      expect(envOf(service).DETL_TASK_QUEUE, service).toBe(envOf('main-worker').DETL_TASK_QUEUE);
      expect(envOf(service).DETL_TRAINING_TASK_QUEUE, service).toBe(envOf('main-worker').DETL_TRAINING_TASK_QUEUE);
    }
  });

  it('passes only settings the code reads, and all the ones a worker needs', () => {
    const known = knownSettings();
    for (const service of workers) {
      const env = asDoc(asDoc(services[service]).environment);
      for (const name of Object.keys(env)) expect(known, `${name} (${service}) is not read by libs/config or the worker`).toContain(name);
      for (const needed of ['DETL_TEMPORAL_ADDRESS', 'DETL_DATABASE_URL', 'DETL_S3_ENDPOINT', 'DETL_S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
        expect(env, service).toHaveProperty(needed);
      }
    }
  });

  it('runs the GPU worker only with --profile gpu, from its own image, on an NVIDIA GPU, on its own task queue', () => {
    const gpu = asDoc(services['gpu-worker']);
    expect(gpu.profiles).toEqual(['gpu']);
    const build = asDoc(gpu.build);
    expect(build.dockerfile).toBe('infra/gpu-worker.Dockerfile');
    expect(path.resolve(infraDir, String(build.context))).toBe(repoRoot);
    expect(asDoc(gpu.environment).DETL_TF_BACKEND).toBe('tensorflow-gpu');
    const devices = asDoc(asDoc(asDoc(gpu.deploy).resources).reservations).devices as Doc[];
    expect(devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
    expect(asDoc(asDoc(gpu.depends_on).migrate).condition).toBe('service_completed_successfully');
  });

  it('gives the workers the credentials MinIO is started with and a database URL matching detl-db', () => {
    const env = envOf('training-worker');
    const minio = asDoc(asDoc(services.minio).environment);
    expect(env.AWS_ACCESS_KEY_ID).toBe(minio.MINIO_ROOT_USER);
    expect(env.AWS_SECRET_ACCESS_KEY).toBe(minio.MINIO_ROOT_PASSWORD);
    const db = asDoc(asDoc(services['detl-db']).environment);
    const url = new URL(String(env.DETL_DATABASE_URL));
    expect([url.username, url.password, url.hostname, url.pathname]).toEqual([db.POSTGRES_USER, db.POSTGRES_PASSWORD, 'detl-db', `/${String(db.POSTGRES_DB)}`]);
  });

  it('starts workers only after the migration succeeded', () => {
    for (const service of workers) expect(asDoc(asDoc(asDoc(services[service]).depends_on).migrate).condition, service).toBe('service_completed_successfully');
  });
});

describe.each(['worker.Dockerfile', 'gpu-worker.Dockerfile'])('infra/%s', (file) => {
  const dockerfile = readFileSync(path.join(infraDir, file), 'utf8');

  it('has its own .dockerignore that keeps the host node_modules out', () => {
    expect(readFileSync(path.join(infraDir, `${file}.dockerignore`), 'utf8')).toMatch(/^\*\*\/node_modules$/m);
  });

  it('copies every workspace manifest before npm ci, so the install sees all workspaces', () => {
    const beforeInstall = dockerfile.slice(0, dockerfile.indexOf('RUN npm ci'));
    for (const group of ['apps', 'libs']) {
      for (const name of readdirSync(path.join(repoRoot, group))) {
        if (existsSync(path.join(repoRoot, group, name, 'package.json'))) expect(beforeInstall).toContain(`COPY ${group}/${name}/package.json`);
      }
    }
    for (const copied of beforeInstall.matchAll(/^COPY (\S+) /gm)) expect(existsSync(path.join(repoRoot, copied[1] ?? '')), copied[1]).toBe(true);
  });

  it('runs the worker entry point that exists', () => {
    expect(dockerfile).toMatch(/CMD \["node_modules\/\.bin\/tsx", "apps\/worker\/src\/main\.ts"\]/);
    expect(existsSync(path.join(repoRoot, 'apps/worker/src/main.ts'))).toBe(true);
  });
});

describe('infra/gpu-worker.Dockerfile', () => {
  const dockerfile = readFileSync(path.join(infraDir, 'gpu-worker.Dockerfile'), 'utf8');

  it('builds the GPU engine after npm ci (which replaces the tfjs-node-gpu package) and selects it', () => {
    const install = dockerfile.search(/^RUN .*\bnpm ci\b/m);
    const setup = dockerfile.search(/^RUN .*tools\/setup-native\.ts --gpu\b/m);
    expect(install).toBeGreaterThan(0);
    expect(setup).toBeGreaterThan(install);
    expect(existsSync(path.join(repoRoot, 'tools/setup-native.ts'))).toBe(true);
    expect(dockerfile).toMatch(/^ENV DETL_TF_BACKEND=tensorflow-gpu\b/m);
    expect(knownSettings()).toContain('DETL_TF_BACKEND');
  });

  it('puts the CUDA libraries of the build on LD_LIBRARY_PATH, cuSOLVER included', () => {
    const entries = /LD_LIBRARY_PATH=(\S+)/.exec(dockerfile)?.[1]?.split(':') ?? [];
    expect(entries).toContain('/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cusolver/lib');
    expect(entries).toContain('/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cudnn/lib');
  });
});

describe('infra/k8s', () => {
  const k8sDir = path.join(infraDir, 'k8s');
  const docs = readdirSync(k8sDir)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(k8sDir, file), 'utf8')).map((document) => {
        expect(document.errors, file).toEqual([]);
        return { file, doc: asDoc(document.toJS()) };
      }),
    );
  const byKind = (kind: string) => docs.filter(({ doc }) => doc.kind === kind).map(({ doc }) => doc);

  it('every manifest has apiVersion, kind and a name, and kustomization lists every file', () => {
    for (const { file, doc } of docs) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      expect(asDoc(doc.metadata).name, file).toBeTruthy();
    }
    const kustomization = asDoc(parse(readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8')));
    expect([...(kustomization.resources as string[])].sort()).toEqual([...new Set(docs.map(({ file }) => file))].sort());
  });

  it('the worker Deployment and migration Job read the ConfigMap and Secret that are defined', () => {
    const configMaps = byKind('ConfigMap').map((doc) => asDoc(doc.metadata).name);
    const secrets = byKind('Secret').map((doc) => asDoc(doc.metadata).name);
    const workloads = [...byKind('Deployment'), ...byKind('Job')];
    expect(workloads).toHaveLength(4);
    for (const workload of workloads) {
      const containers = asDoc(asDoc(asDoc(workload.spec).template).spec).containers as Doc[];
      for (const container of containers) {
        const sources = (container.envFrom as Doc[]).map(asDoc);
        for (const source of sources) {
          if (source.configMapRef !== undefined) expect(configMaps).toContain(asDoc(source.configMapRef).name);
          if (source.secretRef !== undefined) expect(secrets).toContain(asDoc(source.secretRef).name);
        }
        expect(asDoc(asDoc(container.resources).limits).memory, `${String(asDoc(workload.metadata).name)} needs a memory limit`).toBeTruthy();
      }
    }
  });

  it('sets only settings the code reads', () => {
    const known = knownSettings();
    for (const doc of [...byKind('ConfigMap'), ...byKind('Secret')]) {
      const data = { ...asDoc(doc.data), ...asDoc(doc.stringData) };
      for (const name of Object.keys(data)) expect(known, `${name} is not read by libs/config or the worker`).toContain(name);
    }
    for (const workload of [...byKind('Deployment'), ...byKind('Job')]) {
      for (const container of asDoc(asDoc(asDoc(workload.spec).template).spec).containers as Doc[]) {
        for (const entry of ((container.env ?? []) as Doc[]).map(asDoc)) expect(known, `${String(entry.name)} is not read by libs/config or the worker`).toContain(entry.name);
      }
    }
  });

  it('every Deployment selector matches its pod labels', () => {
    expect(byKind('Deployment')).toHaveLength(3);
    for (const deployment of byKind('Deployment')) {
      const spec = asDoc(deployment.spec);
      const selector = asDoc(asDoc(spec.selector).matchLabels);
      const labels = asDoc(asDoc(asDoc(spec.template).metadata).labels);
      expect(Object.keys(selector).length).toBeGreaterThan(0);
      for (const [key, value] of Object.entries(selector)) expect(labels[key]).toBe(value);
    }
  });

  it('kustomization maps every workload image to a registry', () => {
    const kustomization = asDoc(parse(readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8')));
    const mapped = (kustomization.images as Doc[]).map((image) => asDoc(image).name);
    for (const workload of [...byKind('Deployment'), ...byKind('Job')]) {
      for (const container of asDoc(asDoc(asDoc(workload.spec).template).spec).containers as Doc[]) expect(mapped).toContain(container.image);
    }
  });

  const containerOf = (name: string): Doc => {
    const deployment = byKind('Deployment').find((doc) => asDoc(doc.metadata).name === name);
    const [container] = asDoc(asDoc(asDoc(deployment?.spec).template).spec).containers as Doc[];
    return asDoc(container);
  };
  const envOf = (name: string): Doc => Object.fromEntries(((containerOf(name).env ?? []) as Doc[]).map((entry) => [asDoc(entry).name, asDoc(entry).value]));

  it('runs a worker Deployment per task queue: main queue, CPU training queue, GPU training queue', () => {
    const [configMap] = byKind('ConfigMap');
    expectQueuePlan({ main: envOf('detl-worker'), training: envOf('detl-training-worker'), gpu: envOf('detl-gpu-worker') }, asDoc(configMap?.data));
    // Only the GPU worker asks for a GPU; the main queue needs no more than a core.
    expect(asDoc(asDoc(containerOf('detl-worker').resources).limits)['nvidia.com/gpu']).toBeUndefined();
    expect(asDoc(asDoc(containerOf('detl-training-worker').resources).limits)['nvidia.com/gpu']).toBeUndefined();
  });

  it('the GPU worker asks for one NVIDIA GPU and runs the tensorflow-gpu backend', () => {
    const container = containerOf('detl-gpu-worker');
    expect(asDoc(asDoc(container.resources).limits)['nvidia.com/gpu']).toBe(1);
    expect(container.image).toBe('detl-gpu-worker');
    expect(envOf('detl-gpu-worker').DETL_TF_BACKEND).toBe('tensorflow-gpu');
  });
});
