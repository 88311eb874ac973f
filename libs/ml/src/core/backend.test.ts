import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND_ENV_VARIABLE, initBackend } from './backend';

describe('initBackend', () => {
  afterEach(() => {
    delete process.env[BACKEND_ENV_VARIABLE];
  });

  it('auto falls through the missing tfjs-node packages to wasm and reports why', async () => {
    const info = await initBackend('auto');
    // tfjs-node / tfjs-node-gpu cannot install on this machine; if they ever do, auto picks them.
    if (info.backend === 'wasm') {
      expect(info.fallbacks.map((f) => f.preference)).toEqual(['tensorflow-gpu', 'tensorflow']);
      expect(info.fallbacks[0]?.error).toContain('@tensorflow/tfjs-node-gpu');
      expect(info.registeredKernels).toContain('Conv2DBackpropFilter');
    } else {
      expect(info.backend).toBe('tensorflow');
    }
    expect(tf.getBackend()).toBe(info.backend);
  });

  it('is idempotent for the same preference', async () => {
    const first = await initBackend('wasm');
    const second = await initBackend('wasm');
    expect(second).toBe(first);
  });

  it('lets the environment override the argument', async () => {
    process.env[BACKEND_ENV_VARIABLE] = 'cpu';
    const info = await initBackend('wasm');
    expect(info.backend).toBe('cpu');
    expect(info.preference).toBe('cpu');
  });

  it('rejects an unknown override with the variable named', async () => {
    process.env[BACKEND_ENV_VARIABLE] = 'cuda';
    await expect(initBackend('auto')).rejects.toThrow(/DETL_TF_BACKEND=cuda/);
  });

  it('fails clearly when an explicitly requested native backend is absent', async () => {
    let loaded = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      loaded = false;
    }
    if (loaded) return;
    await expect(initBackend('tensorflow')).rejects.toThrow(/@tensorflow\/tfjs-node could not be loaded/);
  });
});
