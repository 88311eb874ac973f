-- Indexes for the dashboard's run list (apps/dashboard), measured with `npm run bench -- dashboard`
-- at 100k experiments: name sorting, name substring search and the architecture filter otherwise
-- read the whole experiments table (about 2 kB a row, most of it the config JSON) on each request.

-- pg_trgm ships with PostgreSQL's contrib and is a trusted extension (a database owner may create
-- it); the embedded PGlite server loads it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- CreateIndex
CREATE INDEX "experiments_name_idx" ON "experiments"("name");

-- CreateIndex
CREATE INDEX "experiments_name_trgm_idx" ON "experiments" USING GIN ("name" gin_trgm_ops);

-- CreateIndex
CREATE INDEX "experiments_config_idx" ON "experiments" USING GIN ("config" jsonb_path_ops);
