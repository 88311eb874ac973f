/**
 * Makes the native TensorFlow engine usable in this checkout: restores the cached binding after
 * `npm ci` (which replaces the tfjs-node package), or builds it once from the PyPI wheel.
 *
 *   tsx tools/setup-native.ts              cpu engine (tfjs-node against tensorflow-cpu)
 *   tsx tools/setup-native.ts --gpu        gpu engine (tfjs-node-gpu against tensorflow + CUDA 12 wheels)
 *   tsx tools/setup-native.ts --rebuild    ignore the cache
 *   tsx tools/setup-native.ts --postinstall  never fails: one line saying what happened (npm's postinstall)
 *
 * Exit codes: 0 ready (or --postinstall), 3 unavailable on this machine, 1 build failed.
 */
import { ensureNativeTensorflow, type NativeVariant } from '@detl/native-tensorflow';

const args = new Set(process.argv.slice(2));
const known = new Set(['--gpu', '--rebuild', '--postinstall']);
for (const arg of args) {
  if (!known.has(arg)) {
    process.stderr.write(`setup-native: unknown argument ${arg}; expected ${[...known].join(', ')}\n`);
    process.exit(2);
  }
}
const variant: NativeVariant = args.has('--gpu') ? 'gpu' : 'cpu';
const postinstall = args.has('--postinstall');
const started = Date.now();
const log = (line: string) => process.stderr.write(`native TensorFlow (${variant}): ${line}\n`);

if (process.env['DETL_SKIP_NATIVE'] === '1') {
  log('skipped (DETL_SKIP_NATIVE=1); the wasm backend will run');
  process.exit(0);
}

ensureNativeTensorflow({ variant, log, rebuild: args.has('--rebuild') }).then(
  (outcome) => {
    if (outcome.status === 'ready') {
      if (outcome.how !== 'installed' || !postinstall) log(`ready (${outcome.how}, TensorFlow ${outcome.tensorflowVersion}, ${((Date.now() - started) / 1000).toFixed(1)} s): ${outcome.directory}`);
      process.exit(0);
    }
    log(`unavailable, the wasm backend will run: ${outcome.reason}`);
    process.exit(postinstall ? 0 : 3);
  },
  (error: unknown) => {
    log(`setup failed, the wasm backend will run: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(postinstall ? 0 : 1);
  },
);
