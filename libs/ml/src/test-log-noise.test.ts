import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it, vi } from 'vitest';
import { projectTestConfig } from '../../../vitest.shared.mts';

// The shared test config drops tfjs-backend-cpu's "install tfjs-node" banner from the test log; this
// takes the banner from a real first use of the backend, so a tfjs update that rewords it shows here.
describe('test log noise filter', () => {
  it('drops the tfjs-backend-cpu banner and keeps every other line', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    let lines: string[];
    try {
      const backend = new MathBackendCPU();
      backend.write(new Float32Array([1]), [1], 'float32');
      backend.dispose();
      lines = warn.mock.calls.map((args) => args.join(' '));
    } finally {
      warn.mockRestore();
    }
    const banner = lines.find((line) => line.includes('TensorFlow.js in Node.js'));
    expect(banner).toBeDefined();
    const onConsoleLog = projectTestConfig(import.meta.url).test?.onConsoleLog;
    expect(onConsoleLog?.(banner as string, 'stderr', undefined)).toBe(false);
    expect(onConsoleLog?.('fold 2: accuracy 0.5', 'stdout', undefined)).toBe(true);
  });
});
