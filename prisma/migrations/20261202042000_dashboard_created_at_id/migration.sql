-- The run list's default order is created_at DESC, id DESC (id breaks ties so pages never overlap).
-- With created_at alone in the index, a deep page (OFFSET 10,000) fetched a heap row per skipped entry
-- to learn its id (`npm run bench -- dashboard`: random page p95 93 ms at 100k runs); with id in the
-- index the skip is an index-only scan.

-- CreateIndex
CREATE INDEX "experiments_created_at_id_idx" ON "experiments"("created_at" DESC, "id" DESC);
