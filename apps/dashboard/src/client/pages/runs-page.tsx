import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { RunListItemJson } from '../../api-types';
import { fetchFacets, fetchRuns, fetchSweeps } from '../api';
import { ErrorNotice, Notice, StatusBadge } from '../app';
import { duration, meanStd, timestamp } from '../format';
import { Link, navigate } from '../router';

const FILTER_KEYS = ['status', 'architecture', 'sweep', 'from', 'to', 'q'] as const;

const COLUMNS: { key: string; label: string; sort?: string }[] = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'status', label: 'Status', sort: 'status' },
  { key: 'architecture', label: 'Architecture', sort: 'architecture' },
  { key: 'sweep', label: 'Sweep' },
  { key: 'dataset', label: 'Dataset' },
  { key: 'imageSize', label: 'Image' },
  { key: 'backend', label: 'Backend' },
  { key: 'accuracy', label: 'Accuracy (mean ± std)', sort: 'meanAccuracy' },
  { key: 'createdAt', label: 'Created (UTC)', sort: 'createdAt' },
  { key: 'duration', label: 'Duration', sort: 'durationMs' },
];

/** The address with one query parameter changed (empty removes it); any filter change goes back to page 1. */
function withParam(search: URLSearchParams, key: string, value: string): string {
  const next = new URLSearchParams(search);
  if (value) next.set(key, value);
  else next.delete(key);
  if (key !== 'page') next.delete('page');
  const query = next.toString();
  return query ? `/?${query}` : '/';
}

/** The runs table: filters, sort and page all live in the address. */
export function RunsPage({ search }: { search: URLSearchParams }) {
  const facets = useQuery({ queryKey: ['facets'], queryFn: fetchFacets });
  // The newest sweeps fill the sweep filter; a shared address may name an older one, kept as an option.
  const sweeps = useQuery({ queryKey: ['sweeps', 'filter'], queryFn: () => fetchSweeps(1, 100) });
  const sweepId = search.get('sweep') ?? '';
  const runs = useQuery({
    queryKey: ['runs', search.toString()],
    queryFn: () => fetchRuns(search),
    placeholderData: keepPreviousData,
    // Running runs change status; poll only while the page shows one.
    refetchInterval: (query) => (query.state.data?.items.some((run) => run.status === 'running' || run.status === 'queued') ? 5000 : false),
  });
  const [text, setText] = useState(search.get('q') ?? '');
  const [selected, setSelected] = useState<string[]>([]);
  const sort = search.get('sort') ?? 'createdAt';
  const order = search.get('order') ?? 'desc';
  const page = Number(search.get('page') ?? '1');
  const filtered = FILTER_KEYS.some((key) => search.has(key));

  // Typing in the name filter updates the address after a pause, replacing rather than pushing history.
  useEffect(() => {
    if (text === (search.get('q') ?? '')) return;
    const timer = setTimeout(() => navigate(withParam(search, 'q', text.trim()), { replace: true }), 300);
    return () => clearTimeout(timer);
  }, [text, search]);

  const toggle = (id: string) => setSelected((current) => (current.includes(id) ? current.filter((other) => other !== id) : [...current, id].slice(-5)));
  const sortBy = (field: string) => {
    const next = new URLSearchParams(search);
    next.set('sort', field);
    next.set('order', sort === field && order === 'desc' ? 'asc' : 'desc');
    next.delete('page');
    navigate(`/?${next.toString()}`);
  };

  const data = runs.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.pageSize)) : 1;
  return (
    <>
      <h1>Runs</h1>
      <form className="filters" aria-label="filters" onSubmit={(event) => event.preventDefault()}>
        <label>
          Status
          <select name="status" value={search.get('status') ?? ''} onChange={(event) => navigate(withParam(search, 'status', event.target.value))}>
            <option value="">any</option>
            {(facets.data?.statuses ?? ['queued', 'running', 'succeeded', 'failed', 'cancelled']).map((status) => (
              <option key={status}>{status}</option>
            ))}
          </select>
        </label>
        <label>
          Architecture
          <select name="architecture" value={search.get('architecture') ?? ''} onChange={(event) => navigate(withParam(search, 'architecture', event.target.value))}>
            <option value="">any</option>
            {(facets.data?.architectures ?? []).map((architecture) => (
              <option key={architecture}>{architecture}</option>
            ))}
          </select>
        </label>
        <label>
          Sweep
          <select name="sweep" value={sweepId} onChange={(event) => navigate(withParam(search, 'sweep', event.target.value))}>
            <option value="">any (or none)</option>
            {(sweeps.data?.items ?? []).map((sweep) => (
              <option key={sweep.id} value={sweep.id}>
                {sweep.name} ({sweep.id.slice(0, 8)})
              </option>
            ))}
            {sweepId && !sweeps.data?.items.some((sweep) => sweep.id === sweepId) && <option value={sweepId}>sweep {sweepId.slice(0, 8)}</option>}
          </select>
        </label>
        <label>
          Created from
          <input type="date" name="from" value={search.get('from') ?? ''} onChange={(event) => navigate(withParam(search, 'from', event.target.value))} />
        </label>
        <label>
          to
          <input type="date" name="to" value={search.get('to') ?? ''} onChange={(event) => navigate(withParam(search, 'to', event.target.value))} />
        </label>
        <label className="grow">
          Name contains
          <input type="search" name="q" value={text} placeholder="e.g. demo" onChange={(event) => setText(event.target.value)} />
        </label>
        {filtered && (
          <button
            type="button"
            onClick={() => {
              setText('');
              navigate('/');
            }}
          >
            Clear filters
          </button>
        )}
      </form>

      <div className="toolbar">
        <span aria-live="polite">{data ? `${data.total.toLocaleString('en')}${data.totalIsLowerBound ? '+' : ''} run${data.total === 1 ? '' : 's'}` : ''}</span>
        <button type="button" disabled={selected.length < 2} onClick={() => navigate(`/compare?ids=${selected.join(',')}`)}>
          Compare selected ({selected.length})
        </button>
        {selected.length === 1 && <span className="hint">select one more run to compare (up to 5)</span>}
        {sweepId && (
          <Link to={`/sweeps/${sweepId}`} className="button">
            Compare the whole sweep
          </Link>
        )}
      </div>

      {runs.isError && <ErrorNotice what="the runs" error={runs.error} />}
      {runs.isPending && <p aria-busy="true">Loading runs…</p>}
      {data && data.items.length === 0 && !filtered && (
        <Notice title="No runs recorded yet">
          Start one with <code>detl demo</code> (or <code>detl run -c config.json</code>); it shows up here while it runs.
        </Notice>
      )}
      {data && data.items.length === 0 && filtered && (
        <Notice title="No runs match these filters">Loosen or clear the filters above to see more runs.</Notice>
      )}
      {data && data.items.length > 0 && (
        <table className="runs">
          <thead>
            <tr>
              <th scope="col">
                <span className="sr-only">select</span>
              </th>
              {COLUMNS.map((column) => (
                <th key={column.key} scope="col" aria-sort={column.sort === sort ? (order === 'asc' ? 'ascending' : 'descending') : undefined}>
                  {column.sort ? (
                    <button type="button" className="sort" onClick={() => sortBy(column.sort as string)}>
                      {column.label}
                      {column.sort === sort ? (order === 'asc' ? ' ▲' : ' ▼') : ''}
                    </button>
                  ) : (
                    column.label
                  )}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {data.items.map((run) => (
              <RunRow key={run.id} run={run} selected={selected.includes(run.id)} onToggle={() => toggle(run.id)} />
            ))}
          </tbody>
        </table>
      )}
      {data && data.total > data.pageSize && (
        <nav className="pager" aria-label="pages">
          <button type="button" disabled={page <= 1} onClick={() => navigate(withParam(search, 'page', String(page - 1)))}>
            ← Newer
          </button>
          <span>
            page {page} of {pages.toLocaleString('en')}
            {data.totalIsLowerBound ? '+' : ''}
          </span>
          <button type="button" disabled={page >= pages && !data.totalIsLowerBound} onClick={() => navigate(withParam(search, 'page', String(page + 1)))}>
            Older →
          </button>
        </nav>
      )}
    </>
  );
}

function RunRow({ run, selected, onToggle }: { run: RunListItemJson; selected: boolean; onToggle: () => void }) {
  return (
    <tr>
      <td>
        <input type="checkbox" checked={selected} onChange={onToggle} aria-label={`select ${run.name} for comparison`} />
      </td>
      <td>
        <Link to={`/runs/${run.id}`}>{run.name}</Link>
        <div className="id">{run.id.slice(0, 8)}</div>
      </td>
      <td>
        <StatusBadge status={run.status} />
        {run.error && <div className="error-text" title={run.error}>{run.error.slice(0, 80)}</div>}
      </td>
      <td>{run.architecture ?? '–'}</td>
      <td>
        {run.sweep ? (
          <Link to={`/?sweep=${run.sweep.id}`} title={`show only sweep ${run.sweep.name}`}>
            {run.sweep.name}
            {run.sweep.index === null ? '' : ` #${run.sweep.index}`}
          </Link>
        ) : (
          '–'
        )}
      </td>
      <td className="dataset" title={run.dataset ?? ''}>
        {run.dataset ?? '–'}
      </td>
      <td>{run.imageSize === null ? '–' : `${run.imageSize} px`}</td>
      <td>{run.backend ?? '–'}</td>
      <td>{meanStd(run.meanAccuracy, run.stdAccuracy)}</td>
      <td>{timestamp(run.createdAt)}</td>
      <td>{duration(run.durationMs)}</td>
    </tr>
  );
}
