-- Stored sort and filter keys for the dashboard's run list (apps/dashboard), measured with
-- `npm run bench -- dashboard` at 100k experiments. Sorting by mean accuracy or duration computed the
-- key from JSON (or now()) for every row and sorted the whole table (341 ms / 215 ms p95), and the
-- architecture filter could only be answered by a GIN containment scan that read the wide rows.
--
-- The keys are GENERATED ALWAYS … STORED columns: PostgreSQL recomputes them on every write of
-- `config`, `summary`, `started_at` or `finished_at`, so no writer (the tracking store, a retried
-- activity, a manual repair) can leave them stale, and no writer has to know they exist.

-- AlterTable
ALTER TABLE "experiments"
  -- `model.architecture` of the validated config.
  ADD COLUMN "architecture" TEXT GENERATED ALWAYS AS ("config" -> 'model' ->> 'architecture') STORED,
  -- `summary.meanAccuracy` once the results are aggregated; a summary without a numeric value gives
  -- NULL instead of failing the write (a cast of a non-number would).
  ADD COLUMN "mean_accuracy" DOUBLE PRECISION GENERATED ALWAYS AS (
    CASE WHEN jsonb_typeof("summary" -> 'meanAccuracy') = 'number' THEN ("summary" ->> 'meanAccuracy')::float8 END
  ) STORED,
  -- Finish minus start of a finished run; NULL while it runs or before it starts (a live duration
  -- depends on now(), which a stored column cannot), so such runs sort last.
  ADD COLUMN "duration_ms" DOUBLE PRECISION GENERATED ALWAYS AS ((EXTRACT(EPOCH FROM ("finished_at" - "started_at")) * 1000)::float8) STORED;

-- Both directions of each sort, with missing values last in both: one btree serves ASC NULLS LAST
-- forwards but DESC NULLS FIRST backwards, so DESC NULLS LAST needs its own. `id` breaks ties in the
-- same order the query does, so a page is read straight off the index.

-- CreateIndex
CREATE INDEX "experiments_mean_accuracy_id_idx" ON "experiments"("mean_accuracy", "id");

-- CreateIndex
CREATE INDEX "experiments_mean_accuracy_desc_idx" ON "experiments"("mean_accuracy" DESC NULLS LAST, "id" DESC);

-- CreateIndex
CREATE INDEX "experiments_duration_ms_id_idx" ON "experiments"("duration_ms", "id");

-- CreateIndex
CREATE INDEX "experiments_duration_ms_desc_idx" ON "experiments"("duration_ms" DESC NULLS LAST, "id" DESC);

-- CreateIndex
CREATE INDEX "experiments_architecture_id_idx" ON "experiments"("architecture", "id");

-- CreateIndex
CREATE INDEX "experiments_architecture_desc_idx" ON "experiments"("architecture" DESC NULLS LAST, "id" DESC);

-- The architecture filter, newest first (the list's default order), and its capped count as an
-- index-only scan.
-- CreateIndex
CREATE INDEX "experiments_architecture_created_at_idx" ON "experiments"("architecture", "created_at" DESC);

-- The usual filter combination (status + architecture, newest first) with the name alongside, so a
-- name search within it is counted by an index-only scan instead of visiting a heap row (about 2 kB,
-- mostly config JSON) per candidate. Prisma's schema language has no INCLUDE; the key columns are
-- mirrored in schema.prisma.
-- CreateIndex
CREATE INDEX "experiments_status_architecture_created_at_idx" ON "experiments"("status", "architecture", "created_at" DESC) INCLUDE ("name");
