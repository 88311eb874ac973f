import { useQuery } from '@tanstack/react-query';
import type { SweepItemJson } from '../../api-types';
import { fetchSweepCompare, fetchSweeps } from '../api';
import { ErrorNotice, Notice, StatusBadge } from '../app';
import { configValue, percent, timestamp } from '../format';
import { Link } from '../router';
import { CompareView } from './compare-page';

const COUNT_ORDER = ['succeeded', 'running', 'queued', 'pending', 'failed', 'cancelled'] as const;

/** "2 succeeded, 1 running" — the states a sweep's experiments are in, most telling first. */
function countsText(sweep: SweepItemJson): string {
  const parts = COUNT_ORDER.filter((status) => sweep.counts[status] > 0).map((status) => `${sweep.counts[status]} ${status}`);
  return parts.length === 0 ? 'none recorded' : parts.join(', ');
}

/** Every sweep, newest first, with its progress and best result; links to its runs and to the whole-sweep comparison. */
export function SweepsPage({ search }: { search: URLSearchParams }) {
  const page = Math.max(1, Number(search.get('page') ?? '1') || 1);
  const sweeps = useQuery({
    queryKey: ['sweeps', page],
    queryFn: () => fetchSweeps(page),
    refetchInterval: (query) => (query.state.data?.items.some((sweep) => sweep.status === 'running' || sweep.status === 'queued') ? 5000 : false),
  });
  if (sweeps.isPending) return <p aria-busy="true">Loading sweeps…</p>;
  if (sweeps.isError) return <ErrorNotice what="the sweeps" error={sweeps.error} />;
  const { items, total, pageSize } = sweeps.data;
  return (
    <>
      <h1>Sweeps</h1>
      {items.length === 0 ? (
        <Notice title="No sweeps recorded yet">
          Launch one with <code>detl sweep launch -c configs/sweeps/ablation.json</code>; its experiments then show up here and in the runs list.
        </Notice>
      ) : (
        <table className="runs sweeps">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Experiments</th>
              <th scope="col">Best accuracy</th>
              <th scope="col">Created (UTC)</th>
              <th scope="col">Open</th>
            </tr>
          </thead>
          <tbody>
            {items.map((sweep) => (
              <tr key={sweep.id}>
                <td>
                  {sweep.name}
                  <div className="id">{sweep.id.slice(0, 8)}</div>
                </td>
                <td>
                  <StatusBadge status={sweep.status} />
                  {sweep.error && <div className="error-text">{sweep.error.slice(0, 80)}</div>}
                </td>
                <td>
                  {sweep.planned} planned: {countsText(sweep)}
                </td>
                <td>{percent(sweep.bestMeanAccuracy)}</td>
                <td>{timestamp(sweep.createdAt)}</td>
                <td className="actions">
                  <Link to={`/?sweep=${sweep.id}`}>runs</Link> · <Link to={`/sweeps/${sweep.id}`}>compare the sweep</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > pageSize && (
        <nav className="pager" aria-label="pages">
          {page > 1 && <Link to={`/sweeps?page=${page - 1}`}>← Newer</Link>}
          <span>
            page {page} of {Math.ceil(total / pageSize)}
          </span>
          {page * pageSize < total && <Link to={`/sweeps?page=${page + 1}`}>Older →</Link>}
        </nav>
      )}
    </>
  );
}

/** A whole sweep compared: what it varied per experiment, then the same views as comparing picked runs. */
export function SweepComparePage({ id }: { id: string }) {
  const compare = useQuery({
    queryKey: ['sweep-compare', id],
    queryFn: () => fetchSweepCompare(id),
    refetchInterval: (query) => (query.state.data?.runs.some((run) => run.status === 'running' || run.status === 'queued') ? 5000 : false),
  });
  if (compare.isPending) return <p aria-busy="true">Loading the sweep…</p>;
  if (compare.isError) {
    return (
      <>
        <ErrorNotice what={`sweep ${id}`} error={compare.error} />
        <p>
          <Link to="/sweeps">Back to the sweeps</Link>
        </p>
      </>
    );
  }
  const { sweep, runs, configDiff, truncated } = compare.data;
  return (
    <article className="compare sweep">
      <p className="crumbs">
        <Link to="/sweeps">Sweeps</Link> / {sweep.name}
      </p>
      <h1>
        Sweep {sweep.name} <StatusBadge status={sweep.status} />
      </h1>
      <p>
        {sweep.planned} planned experiments: {countsText(sweep)}. <Link to={`/?sweep=${sweep.id}`}>Its runs in the list</Link>.
      </p>
      {truncated && (
        <Notice title="Only the first experiments are shown">
          This sweep has more experiments than the dashboard compares at once; open the rest from <Link to={`/?sweep=${sweep.id}`}>its runs</Link>.
        </Notice>
      )}
      <h2>Plan</h2>
      <table className="config-diff plan">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">overrides</th>
            <th scope="col">run</th>
          </tr>
        </thead>
        <tbody>
          {sweep.plan.map((entry) => {
            const run = runs.find((candidate) => candidate.workflowId === entry.workflowId);
            return (
              <tr key={entry.index}>
                <th scope="row">{entry.index}</th>
                <td>
                  {Object.entries(entry.overrides).map(([path, value]) => (
                    <div key={path}>
                      <code>{path}</code> = {configValue(value)}
                    </div>
                  ))}
                </td>
                <td>{run ? <Link to={`/runs/${run.id}`}>{run.name}</Link> : <span className="id">pending</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {runs.length === 0 ? (
        <p>No experiment of this sweep has been recorded yet; they appear as the sweep starts them.</p>
      ) : (
        <CompareView runs={runs} configDiff={configDiff} />
      )}
    </article>
  );
}
