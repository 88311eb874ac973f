import * as tf from '@tensorflow/tfjs-core';

/** The part of tfjs-node's backend object the kernel needs (tfjs-node is an optional dependency, so it is typed here). */
interface TensorflowBackend {
  binding: { TF_ATTR_STRING: number; TF_ATTR_TYPE: number; TF_FLOAT: number; TF_INT32: number };
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[]): tf.Tensor;
}

const FILL_MODES: Record<string, string> = { constant: 'CONSTANT', reflect: 'REFLECT', wrap: 'WRAP', nearest: 'NEAREST' };
const INTERPOLATIONS: Record<string, string> = { nearest: 'NEAREST', bilinear: 'BILINEAR' };

/**
 * Registers tfjs' `Transform` kernel (`tf.image.transform`, which the training augmentation uses)
 * on tfjs-node's `tensorflow` backend, where tfjs-node 4.22 lacks it. It runs TensorFlow's own
 * `ImageProjectiveTransformV3`, which tfjs' cpu and wasm kernels were written to match, so
 * augmentation behaves the same on every backend.
 * @returns the kernel names registered by this call (empty when already there).
 */
export function registerTensorflowTransformKernel(): string[] {
  if (tf.getKernel(tf.Transform, 'tensorflow')) return [];
  tf.registerKernel({
    kernelName: tf.Transform,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { image, transforms } = inputs as unknown as Required<Record<keyof tf.TransformInputs, tf.TensorInfo>>;
      const { interpolation, fillMode, fillValue, outputShape } = attrs as unknown as tf.TransformAttrs;
      const native = backend as unknown as TensorflowBackend;
      const fill = FILL_MODES[fillMode];
      const method = INTERPOLATIONS[interpolation];
      if (!fill || !method) throw new Error(`Transform: unsupported interpolation '${interpolation}' or fill mode '${fillMode}'`);
      const [, height = 0, width = 0] = image.shape;
      const shape = tf.tensor1d(outputShape ?? [height, width], 'int32');
      const fillTensor = tf.scalar(fillValue, 'float32');
      try {
        return native.executeSingleOutput(
          'ImageProjectiveTransformV3',
          [
            { name: 'dtype', type: native.binding.TF_ATTR_TYPE, value: image.dtype === 'int32' ? native.binding.TF_INT32 : native.binding.TF_FLOAT },
            { name: 'interpolation', type: native.binding.TF_ATTR_STRING, value: method },
            { name: 'fill_mode', type: native.binding.TF_ATTR_STRING, value: fill },
          ],
          [image, transforms, shape, fillTensor],
        ) as unknown as tf.TensorInfo;
      } finally {
        shape.dispose();
        fillTensor.dispose();
      }
    },
  });
  return [tf.Transform];
}

/** The part of tfjs' cpu backend object the batch fix needs. */
interface CpuBackend {
  data: { get(dataId: object): { values: tf.TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

let cpuTransformFixed = false;

/**
 * Replaces the cpu backend's `Transform` kernel with one that transforms every image of a batch:
 * tfjs-backend-cpu 4.22 returns from inside its batch loop, so images after the first come back
 * as the fill value (zeros). The stock kernel is kept and called once per image.
 * @returns the kernel names replaced by this call (empty when already done).
 */
export function fixCpuTransformKernel(): string[] {
  const stock = tf.getKernel(tf.Transform, 'cpu');
  if (cpuTransformFixed || !stock) return [];
  tf.unregisterKernel(tf.Transform, 'cpu');
  tf.registerKernel({
    kernelName: tf.Transform,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { image, transforms } = inputs as unknown as Required<Record<keyof tf.TransformInputs, tf.TensorInfo>>;
      const cpu = backend as unknown as CpuBackend;
      const [batch = 1, height = 0, width = 0, channels = 1] = image.shape;
      const call = (one: tf.TensorInfo, transform: tf.TensorInfo) => stock.kernelFunc({ inputs: { image: one, transforms: transform }, attrs, backend }) as tf.TensorInfo;
      if (batch === 1) return call(image, transforms);
      const imageValues = cpu.data.get(image.dataId).values;
      const transformValues = cpu.data.get(transforms.dataId).values;
      const { outputShape } = attrs as unknown as tf.TransformAttrs;
      const [outHeight, outWidth] = outputShape ?? [height, width];
      const inSize = height * width * channels;
      const outSize = outHeight * outWidth * channels;
      const output = new Float32Array(batch * outSize);
      for (let b = 0; b < batch; b += 1) {
        const one = cpu.makeTensorInfo([1, height, width, channels], image.dtype, imageValues.slice(b * inSize, (b + 1) * inSize));
        const row = transforms.shape[0] === 1 ? 0 : b;
        const transform = cpu.makeTensorInfo([1, 8], 'float32', transformValues.slice(row * 8, row * 8 + 8));
        const result = call(one, transform);
        output.set(cpu.data.get(result.dataId).values, b * outSize);
        for (const info of [one, transform, result]) cpu.disposeIntermediateTensorInfo(info);
      }
      return cpu.makeTensorInfo([batch, outHeight, outWidth, channels], image.dtype, image.dtype === 'int32' ? Int32Array.from(output) : output);
    },
  });
  cpuTransformFixed = true;
  return [tf.Transform];
}
