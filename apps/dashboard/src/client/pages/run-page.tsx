import { useQuery } from '@tanstack/react-query';
import { compareTasks } from '@detl/config/stages';
import type { EpochJson, RunDetailResponse } from '../../api-types';
import { fetchGallery, fetchRun } from '../api';
import { ErrorNotice, Notice, StatusBadge } from '../app';
import { AttemptTimeline, ConfusionHeatmap, FoldAccuracyChart, LearningCurves } from '../charts';
import { duration, meanStd, percent, timestamp } from '../format';
import { Link } from '../router';
import { ScreeningPanel } from './screening-panel';

/** Epochs grouped by task, in the workflow's order (the stage table's): pretraining first, then folds in order. */
export function epochsByTask(epochs: EpochJson[]): [string, EpochJson[]][] {
  const groups = new Map<string, EpochJson[]>();
  for (const epoch of epochs) groups.set(epoch.task, [...(groups.get(epoch.task) ?? []), epoch]);
  return [...groups.entries()].sort(([a], [b]) => compareTasks(a, b));
}

/** One run: everything recorded about it. */
export function RunPage({ id }: { id: string }) {
  const run = useQuery({
    queryKey: ['run', id],
    queryFn: () => fetchRun(id),
    refetchInterval: (query) => (query.state.data?.status === 'running' || query.state.data?.status === 'queued' ? 5000 : false),
  });
  if (run.isPending) return <p aria-busy="true">Loading run…</p>;
  if (run.isError) {
    return (
      <>
        <ErrorNotice what={`run ${id}`} error={run.error} />
        <p>
          <Link to="/">Back to the runs list</Link>
        </p>
      </>
    );
  }
  return <RunView run={run.data} />;
}

function RunView({ run }: { run: RunDetailResponse }) {
  const summary = run.summary;
  const tasks = epochsByTask(run.epochMetrics);
  const failedAttempts = run.stageAttempts.filter((attempt) => attempt.status === 'failed');
  return (
    <article className="run">
      <p className="crumbs">
        <Link to="/">Runs</Link> / {run.name}
      </p>
      <h1>
        {run.name} <StatusBadge status={run.status} />
      </h1>
      {run.error && (
        <Notice title="This run failed" tone="error">
          {run.error}
        </Notice>
      )}
      <dl className="facts">
        <dt>id</dt>
        <dd>
          <code>{run.id}</code>
        </dd>
        <dt>workflow</dt>
        <dd>
          <code>{run.workflowId}</code>
        </dd>
        <dt>created</dt>
        <dd>{timestamp(run.createdAt)}</dd>
        <dt>duration</dt>
        <dd>{run.startedAt ? duration(new Date(run.finishedAt ?? Date.now()).getTime() - new Date(run.startedAt).getTime()) : 'not started'}</dd>
        <dt>backend</dt>
        <dd>{run.backend ?? '–'}</dd>
        <dt>manifest</dt>
        <dd>{run.datasetManifestKey ? <code>{run.datasetManifestKey}</code> : '–'}</dd>
      </dl>

      <section aria-labelledby="results">
        <h2 id="results">Results</h2>
        {summary ? (
          <>
            <p className="headline">
              Accuracy <strong>{meanStd(summary.meanAccuracy, summary.stdAccuracy)}</strong> over {summary.foldAccuracies.length} folds · macro F1{' '}
              {summary.macroF1.toFixed(3)} · pooled {Math.round(summary.accuracyInterval.level * 100)}% interval {percent(summary.accuracyInterval.lower)}–
              {percent(summary.accuracyInterval.upper)}
            </p>
            <div className="row">
              <div id="confusion">
                <h3>Confusion matrix (summed over folds)</h3>
                <ConfusionHeatmap classes={summary.classes} matrix={summary.confusionMatrix} />
              </div>
              <div id="folds">
                <h3>Test accuracy per fold</h3>
                <FoldAccuracyChart folds={run.folds} />
              </div>
            </div>
            <h3>Per class</h3>
            <table className="per-class">
              <thead>
                <tr>
                  <th scope="col">class</th>
                  <th scope="col">precision</th>
                  <th scope="col">recall</th>
                  <th scope="col">F1</th>
                  <th scope="col">ROC-AUC</th>
                  <th scope="col">support</th>
                </tr>
              </thead>
              <tbody>
                {summary.classes.map((name) => {
                  const metrics = summary.perClass[name];
                  return (
                    <tr key={name}>
                      <th scope="row">{name}</th>
                      <td>{percent(metrics?.precision)}</td>
                      <td>{percent(metrics?.recall)}</td>
                      <td>{metrics ? metrics.f1.toFixed(3) : '–'}</td>
                      <td>{summary.rocAuc[name]?.toFixed(3) ?? '–'}</td>
                      <td>{metrics?.support ?? '–'}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </>
        ) : (
          <Notice title="No results yet">
            {run.status === 'running' || run.status === 'queued'
              ? 'The run has not aggregated its folds yet; this page refreshes every few seconds.'
              : 'The run ended before aggregating its folds; see the timeline below for the stage that failed.'}
          </Notice>
        )}
      </section>

      <section aria-labelledby="timeline">
        <h2 id="timeline">Stages and attempts</h2>
        {run.stageAttempts.length === 0 ? (
          <p>No stage has started yet.</p>
        ) : (
          <>
            <AttemptTimeline attempts={run.stageAttempts} />
            {failedAttempts.length > 0 && (
              <p className="error-text">
                {failedAttempts.length} failed attempt{failedAttempts.length === 1 ? '' : 's'} (retried by Temporal where a later attempt exists)
              </p>
            )}
            <table className="attempts">
              <thead>
                <tr>
                  <th scope="col">stage</th>
                  <th scope="col">task</th>
                  <th scope="col">attempt</th>
                  <th scope="col">status</th>
                  <th scope="col">started (UTC)</th>
                  <th scope="col">duration</th>
                  <th scope="col">worker</th>
                  <th scope="col">error</th>
                </tr>
              </thead>
              <tbody>
                {run.stageAttempts.map((attempt) => (
                  <tr key={`${attempt.task}-${attempt.attempt}`} className={attempt.status === 'failed' ? 'failed' : undefined}>
                    <td>{attempt.stage}</td>
                    <td>{attempt.task}</td>
                    <td>{attempt.attempt}</td>
                    <td>
                      <StatusBadge status={attempt.status} />
                    </td>
                    <td>{timestamp(attempt.startedAt)}</td>
                    <td>{duration(attempt.durationMs)}</td>
                    <td>{attempt.workerIdentity}</td>
                    <td className="error-text">{attempt.error ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>

      <section aria-labelledby="curves">
        <h2 id="curves">Learning curves</h2>
        {tasks.length === 0 ? (
          <p>No epoch has been recorded yet.</p>
        ) : (
          <div className="curves">
            {tasks.map(([task, epochs]) => (
              <LearningCurves key={task} task={task} epochs={epochs} />
            ))}
          </div>
        )}
      </section>

      <section aria-labelledby="gradcam">
        <h2 id="gradcam">Grad-CAM overlays</h2>
        <GradCamGallery run={run} />
      </section>

      <section aria-labelledby="screen">
        <h2 id="screen">Screen an image</h2>
        {run.folds.some((fold) => fold.status === 'succeeded') ? (
          <ScreeningPanel runId={run.id} />
        ) : (
          <p>This run has no trained fold model yet; screening needs one. Open a succeeded run to screen an X-ray.</p>
        )}
      </section>

      <section aria-labelledby="artifacts">
        <h2 id="artifacts">Artifacts</h2>
        {run.artifacts.length === 0 ? (
          <p>No reports, figures or models recorded.</p>
        ) : (
          <ul className="artifacts">
            {run.artifacts.map((artifact) => (
              <li key={artifact.key}>
                <a href={artifact.url}>{artifact.key}</a> <span className="id">{artifact.kind}, {(artifact.sizeBytes / 1024).toFixed(1)} KiB</span>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section aria-labelledby="config">
        <h2 id="config">Configuration</h2>
        <pre className="config">{JSON.stringify(run.config, null, 2)}</pre>
      </section>
    </article>
  );
}

/**
 * The Grad-CAM gallery: per overlay the input image, the overlay, true and predicted class, the
 * probability and the fold that explained it, as the Grad-CAM stage recorded them in the run's gallery
 * index. Runs from before the index have only what the overlay keys say (classes and image id).
 */
function GradCamGallery({ run }: { run: RunDetailResponse }) {
  const gallery = useQuery({ queryKey: ['gallery', run.id, run.gradCams.length], queryFn: () => fetchGallery(run.id), enabled: run.gradCams.length > 0 });
  if (run.gradCams.length === 0) {
    return <p>No Grad-CAM overlays recorded{run.status === 'running' ? ' yet; they are made after the folds are aggregated' : ''}.</p>;
  }
  if (gallery.isPending) return <p aria-busy="true">Loading the gallery…</p>;
  if (gallery.isError) return <ErrorNotice what="the Grad-CAM gallery" error={gallery.error} />;
  if (!gallery.data.recorded) {
    return (
      <>
        <p className="hint">This run predates the gallery index: probability, fold and input image were not recorded per overlay.</p>
        <ul className="gallery">
          {run.gradCams.map((cam) => (
            <li key={cam.key}>
              <figure>
                <img src={cam.url} alt={`Grad-CAM of ${cam.image}: true ${cam.trueClass}, predicted ${cam.predictedClass ?? 'unknown'}`} width={160} height={160} />
                <figcaption>
                  <span>true {cam.trueClass}</span>
                  <span className={cam.predictedClass === cam.trueClass ? 'right' : 'wrong'}>predicted {cam.predictedClass ?? '?'}</span>
                  <span className="id">{cam.image}</span>
                </figcaption>
              </figure>
            </li>
          ))}
        </ul>
      </>
    );
  }
  const { entries, pointingGameRate } = gallery.data;
  return (
    <>
      {pointingGameRate !== null && <p>Pointing game: {percent(pointingGameRate)} of correctly classified lesion images peak inside the lesion.</p>}
      <ul className="gallery">
        {entries.map((entry) => (
          <li key={entry.overlayUrl}>
            <figure>
              <div className="pair">
                <img src={entry.imageUrl} alt={`input image ${entry.imageId}`} width={120} height={120} className="pixelated" />
                <img src={entry.overlayUrl} alt={`Grad-CAM of ${entry.imageId}: true ${entry.trueClass}, predicted ${entry.predictedClass}`} width={120} height={120} />
              </div>
              <figcaption>
                <span>true {entry.trueClass}</span>
                <span className={entry.predictedClass === entry.trueClass ? 'right' : 'wrong'}>
                  predicted {entry.predictedClass} ({percent(entry.probability)})
                </span>
                <span className="id">
                  fold {entry.fold} · {entry.imageId}
                </span>
              </figcaption>
            </figure>
          </li>
        ))}
      </ul>
    </>
  );
}
