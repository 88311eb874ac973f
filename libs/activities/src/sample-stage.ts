import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { ExperimentConfig } from '@detl/config';
import { sampleDataset } from '@detl/data';
import { parseManifestKey } from '@detl/storage';
import type { ExperimentRef, SampleDatasetResult } from './activity-types';
import type { ActivityDependencies, StageRunner } from './stage-runner';

/**
 * Stage 1 of the paper, sampling: Data-A (normal vs diseased) and Data-B (four classes) with
 * patient-grouped folds, preprocessed into content-addressed shards plus a manifest in S3.
 */
export function createSampleStage({ tracking, store, settings }: ActivityDependencies, runner: StageRunner) {
  return {
    /** Builds Data-A and Data-B with patient-grouped folds; writes shards and the manifest to S3. */
    async sampleDataset({ experimentId, config }: ExperimentRef & { config: ExperimentConfig }): Promise<SampleDatasetResult> {
      return runner.tracked(experimentId, 'sampleDataset', undefined, async () => {
        const context = Context.current();
        const result = await sampleDataset({
          config,
          store,
          workDir: path.join(settings.home, 'datasets'),
          onProgress: (progress) => context.heartbeat(progress),
        });
        // Reused shards belong to this run as much as new ones, so the record lists all the manifest names.
        const manifestSize = (await store.headObject(result.manifestKey))?.sizeBytes ?? 0;
        // The manifest is content-addressed: its key names the SHA-256 of its bytes.
        const manifestHash = parseManifestKey(result.manifestKey)?.sha256;
        if (manifestHash === undefined) throw new Error(`sampling returned ${result.manifestKey}, which is not a manifest key`);
        await tracking.recordArtifacts(experimentId, [
          { kind: 'manifest', key: result.manifestKey, sizeBytes: manifestSize, sha256: manifestHash, contentType: 'application/json' },
          ...result.manifest.shards.map((shard) => ({ kind: 'shard' as const, key: shard.key, sizeBytes: shard.sizeBytes, sha256: shard.sha256, contentType: 'application/octet-stream' })),
        ]);
        await tracking.setDatasetManifest(experimentId, result.manifestKey);
        return {
          manifestKey: result.manifestKey,
          counts: result.counts,
          shardsWritten: result.shardsWritten,
          shardsReused: result.shardsReused,
          warnings: result.warnings,
        };
      });
    },
  };
}
