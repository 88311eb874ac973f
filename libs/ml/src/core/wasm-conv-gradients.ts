import {
  backend_util,
  getKernel,
  registerKernel,
  unregisterKernel,
  type KernelBackend,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

/**
 * Conv gradient kernels for the wasm backend, built only from kernels wasm already has.
 *
 * Why: tfjs-backend-wasm 4.22 registers no `Conv2DBackpropFilter` (training throws) and its
 * `Conv2DBackpropInput` is a slow scalar loop, while its forward `Conv2D` is XNNPACK. Both
 * gradients are convolutions in disguise:
 *
 * - dW[a,b,ci,co] = Σ_{n,i,j} xpad[n, i·s+a, j·s+b, ci] · dy[n,i,j,co] — a forward convolution
 *   of x with batch and channels swapped ([Ci,H,W,N]) by dy used as the filter ([OH,OW,N,Co]),
 *   with the stride s becoming the *dilation* of that filter.
 * - dx is the full correlation of dy (zeros inserted between rows/columns when s > 1) with the
 *   spatially reversed filter whose in/out channel axes are swapped.
 *
 * Supported: NHWC, any stride, any padding ('same', 'valid', explicit), dilation 1 (tfjs' own
 * conv2d gradient rejects dilation > 1 before reaching these kernels).
 */

type KernelCall = (name: string, inputs: NamedTensorInfoMap, attrs?: NamedAttrMap) => TensorInfo;

interface ConvGradAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const BACKEND = 'wasm';

/** Names of the kernels {@link registerWasmConvGradients} installs. */
export const WASM_CONV_GRADIENT_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;

function kernelCaller(backend: KernelBackend, scratch: TensorInfo[]): KernelCall {
  return (name, inputs, attrs = {}) => {
    const config = getKernel(name, BACKEND);
    if (!config) throw new Error(`wasm conv gradients need the wasm kernel '${name}', which is not registered`);
    const out = config.kernelFunc({ inputs, backend, attrs }) as TensorInfo;
    scratch.push(out);
    return out;
  };
}

function disposeAllBut(backend: KernelBackend, scratch: TensorInfo[], keep: TensorInfo): void {
  for (const info of scratch) {
    if (info !== keep) backend.disposeData(info.dataId);
  }
}

function assertNhwc(attrs: ConvGradAttrs, kernel: string): void {
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm supports dataFormat NHWC only, got ${attrs.dataFormat}`);
  }
}

function convInfoOf(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: ConvGradAttrs,
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
}

/** Removes `excess` trailing rows (axis 1) / columns (axis 2) when an explicit pad would be negative. */
function cropTrailing(call: KernelCall, t: TensorInfo, cropRows: number, cropCols: number): TensorInfo {
  if (cropRows <= 0 && cropCols <= 0) return t;
  const [n, h, w, c] = t.shape as [number, number, number, number];
  return call('Slice', { x: t }, { begin: [0, 0, 0, 0], size: [n, h - Math.max(cropRows, 0), w - Math.max(cropCols, 0), c] });
}

function conv2dBackpropFilterWasm(params: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const args = { ...params, backend: params.backend as KernelBackend };
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
  assertNhwc(attrs, 'Conv2DBackpropFilter');
  const scratch: TensorInfo[] = [];
  const call = kernelCaller(args.backend, scratch);
  try {
    const info = convInfoOf(x.shape as [number, number, number, number], attrs.filterShape, attrs);
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
    const { top, left } = info.padInfo;
    const [, h, w] = x.shape as [number, number, number, number];
    // Pad so the dilated dy "filter" slides over exactly kh x kw positions.
    const bottom = kh + (oh - 1) * sh - h - top;
    const right = kw + (ow - 1) * sw - w - left;
    let xT = call('Transpose', { x }, { perm: [3, 1, 2, 0] });
    // Rows/columns the forward pass never reached (valid padding with a remainder) are cut off.
    xT = cropTrailing(call, xT, -bottom, -right);
    const dyT = call('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const grad = call(
      'Conv2D',
      { x: xT, filter: dyT },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [top, Math.max(bottom, 0)],
          [left, Math.max(right, 0)],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [sh, sw],
      },
    );
    const out = call('Transpose', { x: grad }, { perm: [1, 2, 0, 3] });
    disposeAllBut(args.backend, scratch, out);
    return out;
  } catch (error) {
    for (const info of scratch) args.backend.disposeData(info.dataId);
    throw error;
  }
}

/** Inserts (s-1) zero rows/columns between the rows/columns of an NHWC tensor, using reshape + pad only. */
function insertZeros(call: KernelCall, t: TensorInfo, sh: number, sw: number): TensorInfo {
  const [n, h0, w0, c] = t.shape as [number, number, number, number];
  let h = h0;
  let w = w0;
  let out = t;
  if (sw > 1) {
    const r = call('Reshape', { x: out }, { shape: [n * h, w, 1, c] });
    const p = call('PadV2', { x: r }, { paddings: [[0, 0], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
    out = call('Reshape', { x: p }, { shape: [n, h, w * sw, c] });
    w *= sw;
  }
  if (sh > 1) {
    const r = call('Reshape', { x: out }, { shape: [n, h, 1, w * c] });
    const p = call('PadV2', { x: r }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0]], constantValue: 0 });
    out = call('Reshape', { x: p }, { shape: [n, h * sh, w, c] });
    h *= sh;
  }
  return out;
}

/**
 * dx of a strided 1x1 conv (ResNet's downsampling projections): multiply by the transposed
 * filter at the low resolution first, then spread the result onto every s-th pixel, which is
 * s² times less work than convolving the zero-inserted dy.
 */
function strided1x1Input(call: KernelCall, dy: TensorInfo, filter: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { strideHeight: sh, strideWidth: sw, inHeight: h, inWidth: w } = info;
  const { top, left } = info.padInfo;
  const swapped = call('Transpose', { x: filter }, { perm: [0, 1, 3, 2] });
  const small = call('Conv2D', { x: dy, filter: swapped }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] });
  const spread = insertZeros(call, small, sh, sw);
  const [n, hs, ws, c] = spread.shape as [number, number, number, number];
  // Row r of the spread map is input row r - top; padding rows outside 0…h-1 are dropped.
  const keepRows = Math.min(hs - top, h);
  const keepCols = Math.min(ws - left, w);
  const cropped = call('Slice', { x: spread }, { begin: [0, top, left, 0], size: [n, keepRows, keepCols, c] });
  if (keepRows === h && keepCols === w) return cropped;
  return call('PadV2', { x: cropped }, { paddings: [[0, 0], [0, h - keepRows], [0, w - keepCols], [0, 0]], constantValue: 0 });
}

function conv2dBackpropInputWasm(params: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const args = { ...params, backend: params.backend as KernelBackend };
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as ConvGradAttrs & { inputShape: [number, number, number, number] };
  assertNhwc(attrs, 'Conv2DBackpropInput');
  const scratch: TensorInfo[] = [];
  const call = kernelCaller(args.backend, scratch);
  try {
    const info = convInfoOf(attrs.inputShape, filter.shape as [number, number, number, number], attrs);
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const [, h, w] = attrs.inputShape;
    if (kh === 1 && kw === 1 && (sh > 1 || sw > 1)) {
      const out = strided1x1Input(call, dy, filter, info);
      disposeAllBut(args.backend, scratch, out);
      return out;
    }
    // With stride s the zero-inserted dy has s·OH rows; the last s-1 are zeros and may be cut.
    const dyd = insertZeros(call, dy, sh, sw);
    const [, hd, wd] = dyd.shape as [number, number, number, number];
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padBottom = h + kh - 1 - hd - padTop;
    const padRight = w + kw - 1 - wd - padLeft;
    const cropped = cropTrailing(call, dyd, -padBottom, -padRight);
    // A 1x1 filter is its own spatial reverse; skipping the copy matters for ResNet's many 1x1s.
    const reversed = kh === 1 && kw === 1 ? filter : call('Reverse', { x: filter }, { dims: [0, 1] });
    const swapped = call('Transpose', { x: reversed }, { perm: [0, 1, 3, 2] });
    const out = call(
      'Conv2D',
      { x: cropped, filter: swapped },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [padTop, Math.max(padBottom, 0)],
          [padLeft, Math.max(padRight, 0)],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [1, 1],
      },
    );
    disposeAllBut(args.backend, scratch, out);
    return out;
  } catch (error) {
    for (const info of scratch) args.backend.disposeData(info.dataId);
    throw error;
  }
}

let registered = false;

/**
 * Registers `Conv2DBackpropFilter` (missing on wasm) and replaces the slow stock
 * `Conv2DBackpropInput` with the XNNPACK-backed versions above. Idempotent.
 * @returns the names of the kernels it registered (empty when already done).
 */
export function registerWasmConvGradients(): string[] {
  if (registered) return [];
  for (const name of WASM_CONV_GRADIENT_KERNELS) {
    if (getKernel(name, BACKEND)) unregisterKernel(name, BACKEND);
  }
  registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: BACKEND, kernelFunc: conv2dBackpropFilterWasm });
  registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: BACKEND, kernelFunc: conv2dBackpropInputWasm });
  registered = true;
  return [...WASM_CONV_GRADIENT_KERNELS];
}
