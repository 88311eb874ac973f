import { describe, expect, it } from 'vitest';
import { GradCamGalleryError, readGradCamGallery, writeGradCamGallery, type GradCamGallery } from './grad-cam-gallery';
import { MemoryObjectStore } from './memory-object-store';
import { gradCamIndexKey, gradCamOverlayKey, shardKey } from './storage-layout';

const experimentId = '3f1e2d4c-5b6a-4789-8abc-def012345678';
const gallery: Omit<GradCamGallery, 'format' | 'version'> = {
  experimentId,
  classes: ['normal', 'pneumonia', 'other_disease', 'covid'],
  pointingGameRate: 0.5,
  overlays: [
    {
      overlayKey: gradCamOverlayKey(experimentId, { trueClass: 'covid', imageId: 'covid-7', predictedClass: 'pneumonia' }),
      imageId: 'covid-7',
      imageKey: shardKey('cd'.repeat(32)),
      imageIndex: 3,
      trueClass: 'covid',
      predictedClass: 'pneumonia',
      probability: 0.61,
      fold: 2,
    },
  ],
};

describe('Grad-CAM gallery', () => {
  it('round-trips through the store at the layout’s index key', async () => {
    const store = new MemoryObjectStore();
    const stored = await writeGradCamGallery(store, gallery);
    expect(stored.key).toBe(gradCamIndexKey(experimentId));
    expect(store.contentTypes.get(stored.key)).toBe('application/json');
    expect(await readGradCamGallery(store, experimentId)).toEqual({ format: 'detl-grad-cam-gallery', version: 1, ...gallery });
  });

  it('is null for an experiment without a gallery', async () => {
    expect(await readGradCamGallery(new MemoryObjectStore(), experimentId)).toBeNull();
  });

  it('refuses to write or read something that is not a gallery', async () => {
    const store = new MemoryObjectStore();
    const [entry] = gallery.overlays;
    await expect(writeGradCamGallery(store, { ...gallery, overlays: [{ ...entry!, probability: 1.5 }] })).rejects.toThrow();
    expect(store.puts).toEqual([]);
    await store.putObject(gradCamIndexKey(experimentId), '{"format":"detl-grad-cam-gallery","version":1}');
    await expect(readGradCamGallery(store, experimentId)).rejects.toThrow(GradCamGalleryError);
    await store.putObject(gradCamIndexKey(experimentId), 'not json');
    await expect(readGradCamGallery(store, experimentId)).rejects.toThrow(/not JSON/);
    const other = '00000000-0000-4000-8000-000000000000';
    await store.putObject(gradCamIndexKey(other), JSON.stringify({ format: 'detl-grad-cam-gallery', version: 1, ...gallery }));
    await expect(readGradCamGallery(store, other)).rejects.toThrow(/gallery of experiment 3f1e2d4c/);
  });
});
