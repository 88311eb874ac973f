export * from './tracking-types';
export { createTrackingStore, type TrackingStoreOptions } from './tracking-store';
export { withTransientRetries, isTransientDatabaseError, describeDatabaseError } from './retrying-tracking-store';
export {
  applyMigrations,
  readMigrations,
  migrationChecksum,
  MigrationError,
  DEFAULT_MIGRATIONS_DIR,
  PRISMA_MIGRATION_LOCK_KEY,
  type ApplyMigrationsOptions,
  type MigrationFile,
} from './migrations';
export {
  startEmbeddedPostgres,
  EMBEDDED_POSTGRES_READY_PREFIX,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
} from './embedded-postgres';
export { PgliteWireServer, type PgliteWireServerOptions } from './pglite-wire-server';
export {
  createRunHistoryQueries,
  RUN_SORT_FIELDS,
  MAX_RUN_PAGE_SIZE,
  MAX_COMPARED_RUNS,
  MAX_SWEEP_COMPARED_RUNS,
  MAX_SWEEP_PAGE_SIZE,
  RUN_COUNT_CAP,
  COUNT_PAGES_AHEAD,
  type SweepListQuery,
  type SweepPage,
  type SweepRuns,
  type SweepSummaryItem,
  type RunHistoryQueries,
  type RunListQuery,
  type RunListItem,
  type RunListPage,
  type RunSortField,
} from './run-history-queries';
export {
  createSweepStore,
  type RegisterSweepInput,
  type SweepDetail,
  type SweepExperimentRow,
  type SweepListItem,
  type SweepPlanEntry,
  type SweepRecord,
  type SweepStore,
} from './sweep-store';
