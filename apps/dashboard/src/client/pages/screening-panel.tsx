import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState, type DragEvent, type KeyboardEvent } from 'react';
import type { ScreeningResponse } from '../../api-types';
import { fetchScreening } from '../api';
import { ErrorNotice } from '../app';
import { percent } from '../format';
import { decodeUpload } from '../screening/decode-upload';
import { preprocessForRun, UploadError } from '../screening/preprocess';

type EnsembleModule = typeof import('../screening/ensemble');
type Loaded = Awaited<ReturnType<EnsembleModule['loadFoldModels']>>;
type Result = Awaited<ReturnType<EnsembleModule['screenImage']>>;

type State =
  | { kind: 'idle' }
  | { kind: 'working'; step: string }
  | { kind: 'done'; file: string; pixels: Uint8Array; result: Result }
  | { kind: 'failed'; message: string };

/** Jet colour map (blue → cyan → yellow → red) for heat in [0, 1]. */
function jet(heat: number): [number, number, number] {
  const channel = (offset: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * heat - offset))));
  return [channel(3), channel(2), channel(1)];
}

/** Draws grey pixels (and, when given, the heatmap over them with opacity 0.45 × heat, libs/ml's GRAD_CAM_OVERLAY_ALPHA, as `detl predict` does). */
function draw(canvas: HTMLCanvasElement | null, pixels: Uint8Array, size: number, heatmap?: Float32Array): void {
  const context = canvas?.getContext('2d');
  if (!canvas || !context) return;
  canvas.width = size;
  canvas.height = size;
  const image = context.createImageData(size, size);
  for (let p = 0; p < size * size; p += 1) {
    const grey = pixels[p] as number;
    const heat = heatmap ? Math.min(1, Math.max(0, heatmap[p] as number)) : 0;
    const colour = jet(heat);
    const a = 0.45 * heat;
    for (let c = 0; c < 3; c += 1) image.data[p * 4 + c] = Math.round(grey * (1 - a) + colour[c as 0 | 1 | 2] * a);
    image.data[p * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/**
 * "Screen an image": a dropped chest X-ray is decoded, preprocessed as the run's sampling did, and
 * classified by the run's fold models in this page (tfjs), with the Grad-CAM overlay of the
 * ensemble's class. The file never leaves the browser; only the models are fetched.
 */
export function ScreeningPanel({ runId }: { runId: string }) {
  const screening = useQuery({ queryKey: ['screening', runId], queryFn: () => fetchScreening(runId), retry: false, staleTime: Infinity });
  const [state, setState] = useState<State>({ kind: 'idle' });
  const [dragging, setDragging] = useState(false);
  const models = useRef<Loaded | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const inputCanvas = useRef<HTMLCanvasElement>(null);
  const overlayCanvas = useRef<HTMLCanvasElement>(null);

  useEffect(
    () => () => {
      for (const { model } of models.current ?? []) model.dispose();
      models.current = null;
    },
    [runId],
  );

  useEffect(() => {
    if (state.kind !== 'done' || !screening.data) return;
    const size = screening.data.preprocessing.imageSize;
    draw(inputCanvas.current, state.pixels, size);
    draw(overlayCanvas.current, state.pixels, size, state.result.heatmap);
  }, [state, screening.data]);

  if (screening.isPending) return <p aria-busy="true">Checking whether this run can screen images…</p>;
  if (screening.isError) return <ErrorNotice what="the run's models for screening" error={screening.error} />;
  const info: ScreeningResponse = screening.data;

  const screen = async (file: File | undefined) => {
    if (!file) return;
    try {
      setState({ kind: 'working', step: `reading ${file.name}` });
      const image = await decodeUpload(file);
      const pixels = preprocessForRun(image, info.preprocessing);
      const ensemble = await import('../screening/ensemble');
      if (!models.current) {
        setState({ kind: 'working', step: `loading ${info.models.length} fold model${info.models.length === 1 ? '' : 's'}` });
        models.current = await ensemble.loadFoldModels(info.models, (loaded) => setState({ kind: 'working', step: `loaded ${loaded} of ${info.models.length} fold models` }));
      }
      setState({ kind: 'working', step: 'running the models and Grad-CAM' });
      const result = await ensemble.screenImage(models.current, pixels, info.preprocessing.imageSize, info.preprocessing.scale, { testTimeFlip: info.testTimeFlip, gradCamMethod: info.gradCamMethod });
      setState({ kind: 'done', file: file.name, pixels, result });
    } catch (error) {
      // Whatever the file or the models do, the page stays usable and says what happened.
      const message =
        error instanceof UploadError
          ? error.message
          : `screening failed: ${error instanceof Error ? error.message : String(error)}. Try another image, or reload the page`;
      setState({ kind: 'failed', message });
    }
  };

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setDragging(false);
    void screen(event.dataTransfer.files[0]);
  };
  const onKey = (event: KeyboardEvent<HTMLDivElement>) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      input.current?.click();
    }
  };
  const busy = state.kind === 'working';
  const { preprocessing } = info;
  return (
    <div className="screening">
      <p>
        Drop a chest X-ray (PNG or JPEG). The run's {info.models.length} fold model{info.models.length === 1 ? '' : 's'} run in this browser; the image is
        never uploaded. It is preprocessed as the run's data was: {preprocessing.imageSize}×{preprocessing.imageSize} px grey, shorter side scaled with{' '}
        {preprocessing.resizeKernel} and centre-cropped
        {preprocessing.degradeToPixels === null ? '' : `, degraded through ${preprocessing.degradeToPixels} px`}, pixels ÷ {preprocessing.scale}.
        {info.testTimeFlip ? " As in the run's evaluation, each fold's probabilities are the mean over the image and its left-right mirror (test-time flip)." : ''}
      </p>
      <div
        className={`dropzone${dragging ? ' dragging' : ''}`}
        role="button"
        tabIndex={0}
        aria-label="choose or drop a chest X-ray to screen"
        aria-busy={busy}
        onClick={() => input.current?.click()}
        onKeyDown={onKey}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        {busy ? `${state.step}…` : 'Drop an X-ray here, or press to choose a file'}
        <input
          ref={input}
          type="file"
          accept="image/png,image/jpeg"
          hidden
          data-testid="screening-file"
          onChange={(event) => {
            void screen(event.target.files?.[0]);
            event.target.value = '';
          }}
        />
      </div>
      {state.kind === 'failed' && (
        <p className="error-text" role="alert">
          {state.message}
        </p>
      )}
      {state.kind === 'done' && (
        <div className="screening-result" aria-live="polite">
          <h3>
            {state.file}: {info.classes[state.result.predicted] ?? '?'} ({percent(state.result.probabilities[state.result.predicted])})
          </h3>
          <div className="row">
            <figure>
              <canvas ref={inputCanvas} className="pixelated" data-testid="screening-input" width={preprocessing.imageSize} height={preprocessing.imageSize} />
              <figcaption>network input</figcaption>
            </figure>
            <figure>
              <canvas
                ref={overlayCanvas}
                className="pixelated"
                data-testid="screening-overlay"
                // The map's peak (row-major index) and total heat, so a test can hold the map to libs/ml's.
                data-heat-peak={state.result.heatmap.indexOf(1)}
                data-heat-sum={state.result.heatmap.reduce((sum, value) => sum + value, 0)}
                width={preprocessing.imageSize}
                height={preprocessing.imageSize}
              />
              <figcaption>
                {info.gradCamMethod === 'hires-cam' ? 'HiResCAM' : info.gradCamMethod === 'grad-cam++' ? 'Grad-CAM++' : 'Grad-CAM'} for “{info.classes[state.result.predicted]}” (mean of the folds' maps)
              </figcaption>
            </figure>
            <table className="metrics probabilities">
              <thead>
                <tr>
                  <th scope="col">class</th>
                  <th scope="col">ensemble</th>
                  {state.result.perFold.map(({ fold }) => (
                    <th key={fold} scope="col">
                      fold {fold}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {info.classes.map((name, c) => (
                  <tr key={name} className={c === state.result.predicted ? 'predicted' : undefined}>
                    <th scope="row">{name}</th>
                    <td data-class={name} data-probability={state.result.probabilities[c]}>
                      {(state.result.probabilities[c] ?? 0).toFixed(4)}
                    </td>
                    {state.result.perFold.map(({ fold, probabilities }) => (
                      <td key={fold}>{(probabilities[c] ?? 0).toFixed(4)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p className="hint">A research model's output, not a diagnosis.</p>
        </div>
      )}
    </div>
  );
}
