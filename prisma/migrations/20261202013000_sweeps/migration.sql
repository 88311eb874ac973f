-- CreateTable
CREATE TABLE "sweeps" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "workflow_id" TEXT NOT NULL,
    "status" "experiment_status" NOT NULL DEFAULT 'queued',
    "spec" JSONB NOT NULL,
    "plan" JSONB NOT NULL,
    "concurrency" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "error" TEXT,

    CONSTRAINT "sweeps_pkey" PRIMARY KEY ("id")
);

-- AlterTable
ALTER TABLE "experiments" ADD COLUMN "sweep_id" UUID,
ADD COLUMN "sweep_index" INTEGER;

-- CreateIndex
CREATE UNIQUE INDEX "sweeps_workflow_id_key" ON "sweeps"("workflow_id");

-- CreateIndex
CREATE INDEX "sweeps_created_at_idx" ON "sweeps"("created_at" DESC);

-- CreateIndex
CREATE INDEX "experiments_sweep_id_sweep_index_idx" ON "experiments"("sweep_id", "sweep_index");

-- AddForeignKey
ALTER TABLE "experiments" ADD CONSTRAINT "experiments_sweep_id_fkey" FOREIGN KEY ("sweep_id") REFERENCES "sweeps"("id") ON DELETE SET NULL ON UPDATE CASCADE;
