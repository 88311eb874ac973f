-- CreateEnum
CREATE TYPE "experiment_status" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "stage" AS ENUM ('sample_dataset', 'pretrain', 'fine_tune_fold', 'aggregate_results', 'generate_grad_cams');

-- CreateEnum
CREATE TYPE "attempt_status" AS ENUM ('running', 'succeeded', 'failed');

-- CreateEnum
CREATE TYPE "artifact_kind" AS ENUM ('manifest', 'shard', 'checkpoint', 'model', 'grad_cam', 'report', 'figure');

-- CreateTable
CREATE TABLE "experiments" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "workflow_id" TEXT NOT NULL,
    "status" "experiment_status" NOT NULL DEFAULT 'queued',
    "config" JSONB NOT NULL,
    "config_hash" TEXT NOT NULL,
    "seed" INTEGER NOT NULL,
    "backend" TEXT,
    "dataset_manifest_key" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "error" TEXT,
    "summary" JSONB,

    CONSTRAINT "experiments_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "stage_attempts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "experiment_id" UUID NOT NULL,
    "stage" "stage" NOT NULL,
    "task" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "status" "attempt_status" NOT NULL DEFAULT 'running',
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "duration_ms" INTEGER,
    "error" TEXT,
    "worker_identity" TEXT NOT NULL,
    "details" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "stage_attempts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "epoch_metrics" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "experiment_id" UUID NOT NULL,
    "task" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "epoch" INTEGER NOT NULL,
    "train_loss" DOUBLE PRECISION NOT NULL,
    "train_accuracy" DOUBLE PRECISION NOT NULL,
    "validation_loss" DOUBLE PRECISION,
    "validation_accuracy" DOUBLE PRECISION,
    "learning_rate" DOUBLE PRECISION NOT NULL,
    "duration_ms" INTEGER NOT NULL,
    "images_per_second" DOUBLE PRECISION NOT NULL,
    "checkpoint_key" TEXT,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "epoch_metrics_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "folds" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "experiment_id" UUID NOT NULL,
    "fold_index" INTEGER NOT NULL,
    "status" "attempt_status" NOT NULL,
    "train_count" INTEGER NOT NULL,
    "test_count" INTEGER NOT NULL,
    "accuracy" DOUBLE PRECISION,
    "confusion_matrix" JSONB,
    "report" JSONB,
    "model_key" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "folds_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "artifacts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "experiment_id" UUID NOT NULL,
    "kind" "artifact_kind" NOT NULL,
    "key" TEXT NOT NULL,
    "size_bytes" BIGINT NOT NULL,
    "sha256" TEXT NOT NULL,
    "content_type" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "artifacts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "experiments_workflow_id_key" ON "experiments"("workflow_id");

-- CreateIndex
CREATE INDEX "experiments_created_at_idx" ON "experiments"("created_at" DESC);

-- CreateIndex
CREATE INDEX "experiments_status_created_at_idx" ON "experiments"("status", "created_at" DESC);

-- CreateIndex
CREATE INDEX "stage_attempts_experiment_id_started_at_idx" ON "stage_attempts"("experiment_id", "started_at");

-- CreateIndex
CREATE UNIQUE INDEX "stage_attempts_experiment_id_task_attempt_key" ON "stage_attempts"("experiment_id", "task", "attempt");

-- CreateIndex
CREATE UNIQUE INDEX "epoch_metrics_experiment_id_task_attempt_epoch_key" ON "epoch_metrics"("experiment_id", "task", "attempt", "epoch");

-- CreateIndex
CREATE UNIQUE INDEX "folds_experiment_id_fold_index_key" ON "folds"("experiment_id", "fold_index");

-- CreateIndex
CREATE INDEX "artifacts_experiment_id_kind_idx" ON "artifacts"("experiment_id", "kind");

-- CreateIndex
CREATE UNIQUE INDEX "artifacts_experiment_id_key_key" ON "artifacts"("experiment_id", "key");

-- AddForeignKey
ALTER TABLE "stage_attempts" ADD CONSTRAINT "stage_attempts_experiment_id_fkey" FOREIGN KEY ("experiment_id") REFERENCES "experiments"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "epoch_metrics" ADD CONSTRAINT "epoch_metrics_experiment_id_fkey" FOREIGN KEY ("experiment_id") REFERENCES "experiments"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "folds" ADD CONSTRAINT "folds_experiment_id_fkey" FOREIGN KEY ("experiment_id") REFERENCES "experiments"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "artifacts" ADD CONSTRAINT "artifacts_experiment_id_fkey" FOREIGN KEY ("experiment_id") REFERENCES "experiments"("id") ON DELETE CASCADE ON UPDATE CASCADE;
