import type { ReactNode } from 'react';
import { ApiError } from './api';
import { ComparePage } from './pages/compare-page';
import { RunPage } from './pages/run-page';
import { RunsPage } from './pages/runs-page';
import { SweepComparePage, SweepsPage } from './pages/sweeps-page';
import { Link, useLocation } from './router';

const RUN_PATH = /^\/runs\/([^/]+)\/?$/;
const SWEEP_PATH = /^\/sweeps\/([^/]+)\/?$/;

/** The pages (runs, run, compare, sweeps, sweep), chosen by the address. */
export function App() {
  const { path, search } = useLocation();
  const runMatch = RUN_PATH.exec(path);
  const sweepMatch = SWEEP_PATH.exec(path);
  let page: ReactNode;
  if (path === '/' || path === '/runs') page = <RunsPage search={search} />;
  else if (runMatch?.[1]) page = <RunPage id={decodeURIComponent(runMatch[1])} />;
  else if (path === '/sweeps') page = <SweepsPage search={search} />;
  else if (sweepMatch?.[1]) page = <SweepComparePage id={decodeURIComponent(sweepMatch[1])} />;
  else if (path === '/compare') page = <ComparePage ids={(search.get('ids') ?? '').split(',').filter(Boolean)} />;
  else page = <Notice title="No such page">This address is not a dashboard page. <Link to="/">Go to the runs list.</Link></Notice>;
  return (
    <>
      <header className="top">
        <Link to="/" className="brand">
          detl
        </Link>
        <nav aria-label="main">
          <Link to="/">Runs</Link>
          <Link to="/sweeps">Sweeps</Link>
        </nav>
      </header>
      <main>{page}</main>
    </>
  );
}

/** A boxed message: empty states, errors. */
export function Notice({ title, children, tone = 'info' }: { title: string; children: ReactNode; tone?: 'info' | 'error' }) {
  return (
    <section className={`notice ${tone}`} role={tone === 'error' ? 'alert' : 'status'}>
      <h2>{title}</h2>
      <p>{children}</p>
    </section>
  );
}

/** What went wrong with a request, and what to do about it. */
export function ErrorNotice({ what, error }: { what: string; error: unknown }) {
  const message = error instanceof Error ? error.message : String(error);
  const hint =
    error instanceof ApiError && error.status === 401
      ? ' Open the address that `detl dashboard` printed; it carries the access token.'
      : error instanceof ApiError && error.status >= 500
        ? ' Check the terminal running `detl dashboard` for the cause, then reload.'
        : '';
  return (
    <Notice title={`Could not load ${what}`} tone="error">
      {message}
      {hint}
    </Notice>
  );
}

/** A run or attempt status as a coloured label. */
export function StatusBadge({ status }: { status: string }) {
  return <span className={`status status-${status}`}>{status}</span>;
}
