import { useQuery } from '@tanstack/react-query';
import { foldOfTask, taskOf } from '@detl/config/stages';
import type { ConfigDifferenceJson, RunDetailResponse } from '../../api-types';
import { fetchCompare } from '../api';
import { ErrorNotice, Notice, StatusBadge } from '../app';
import { CompareCurves, ConfusionHeatmap } from '../charts';
import { configValue, meanStd, percent } from '../format';
import { Link } from '../router';

/** Mean validation accuracy per epoch over the given tasks (latest attempt of each), for one run. */
function meanValidationCurve(run: RunDetailResponse, taskFilter: (task: string) => boolean) {
  const latest = new Map<string, number>();
  for (const epoch of run.epochMetrics) if (taskFilter(epoch.task)) latest.set(epoch.task, Math.max(latest.get(epoch.task) ?? 0, epoch.attempt));
  const sums = new Map<number, { total: number; count: number }>();
  for (const epoch of run.epochMetrics) {
    if (!taskFilter(epoch.task) || latest.get(epoch.task) !== epoch.attempt || epoch.validationAccuracy === null) continue;
    const entry = sums.get(epoch.epoch) ?? { total: 0, count: 0 };
    entry.total += epoch.validationAccuracy;
    entry.count += 1;
    sums.set(epoch.epoch, entry);
  }
  return [...sums.entries()].sort(([a], [b]) => a - b).map(([epoch, entry]) => ({ run: run.name, epoch: epoch + 1, value: entry.total / entry.count }));
}

/** 2–5 runs side by side: what differs in their configs, and their results. */
export function ComparePage({ ids }: { ids: string[] }) {
  const compare = useQuery({ queryKey: ['compare', ids.join(',')], queryFn: () => fetchCompare(ids), enabled: ids.length >= 2 && ids.length <= 5 });
  if (ids.length < 2 || ids.length > 5) {
    return (
      <Notice title="Pick 2 to 5 runs to compare">
        Tick their boxes in the <Link to="/">runs list</Link> and press “Compare selected”.
      </Notice>
    );
  }
  if (compare.isPending) return <p aria-busy="true">Loading runs…</p>;
  if (compare.isError) return <ErrorNotice what="the comparison" error={compare.error} />;
  return (
    <article className="compare">
      <p className="crumbs">
        <Link to="/">Runs</Link> / compare
      </p>
      <h1>Compare {compare.data.runs.length} runs</h1>
      <CompareView runs={compare.data.runs} configDiff={compare.data.configDiff} />
    </article>
  );
}

/**
 * Runs side by side (picked runs, or every experiment of a sweep): results per run and fold, the config
 * paths that differ, validation curves in one chart, and the confusion matrices.
 */
export function CompareView({ runs, configDiff }: { runs: RunDetailResponse[]; configDiff: ConfigDifferenceJson[] }) {
  const fineTune = runs.flatMap((run) => meanValidationCurve(run, (task) => foldOfTask(task) !== null));
  const pretrain = runs.flatMap((run) => meanValidationCurve(run, (task) => task === taskOf('pretrainFromScratch')));
  const foldCount = Math.max(0, ...runs.map((run) => run.summary?.foldAccuracies.length ?? 0));
  // Many runs (a sweep) get smaller matrices so a row holds several.
  const matrixWidth = runs.length > 3 ? 260 : 340;
  return (
    <>
      <h2>Results</h2>
      <table className="metrics">
        <thead>
          <tr>
            <th scope="col">run</th>
            <th scope="col">status</th>
            <th scope="col">accuracy (mean ± std)</th>
            <th scope="col">macro F1</th>
            {Array.from({ length: foldCount }, (_, fold) => (
              <th key={fold} scope="col">
                fold {fold}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id}>
              <th scope="row">
                <Link to={`/runs/${run.id}`}>{run.name}</Link>
              </th>
              <td>
                <StatusBadge status={run.status} />
              </td>
              <td>{meanStd(run.summary?.meanAccuracy, run.summary?.stdAccuracy)}</td>
              <td>{run.summary ? run.summary.macroF1.toFixed(3) : '–'}</td>
              {Array.from({ length: foldCount }, (_, fold) => (
                <td key={fold}>{percent(run.summary?.foldAccuracies[fold])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>

      <h2>Configuration differences</h2>
      {configDiff.length === 0 ? (
        <p>The configurations are identical; the runs differ only in chance (or in their data).</p>
      ) : (
        <table className="config-diff">
          <thead>
            <tr>
              <th scope="col">path</th>
              {runs.map((run) => (
                <th key={run.id} scope="col">
                  {run.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {configDiff.map((difference) => (
              <tr key={difference.path}>
                <th scope="row">
                  <code>{difference.path}</code>
                </th>
                {difference.values.map((value, index) => (
                  <td key={runs[index]?.id ?? index}>{configValue(value)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Validation accuracy per epoch</h2>
      <div className="row">
        {pretrain.length > 0 && (
          <div>
            <h3>Pretraining</h3>
            <CompareCurves series={pretrain} title="pretraining validation accuracy per run" />
          </div>
        )}
        {fineTune.length > 0 ? (
          <div>
            <h3>Fine-tuning (mean over folds)</h3>
            <CompareCurves series={fineTune} title="fine-tuning validation accuracy per run" />
          </div>
        ) : (
          <p>No fine-tuning epochs recorded in these runs.</p>
        )}
      </div>

      <h2>Confusion matrices</h2>
      <div className="row side-by-side">
        {runs.map((run) => (
          <div key={run.id}>
            <h3>{run.name}</h3>
            {run.summary ? <ConfusionHeatmap classes={run.summary.classes} matrix={run.summary.confusionMatrix} width={matrixWidth} /> : <p>No results yet.</p>}
          </div>
        ))}
      </div>
    </>
  );
}
