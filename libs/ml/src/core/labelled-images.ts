import { open, readFile } from 'node:fs/promises';
import type { LabelledImages } from '@detl/config';

// The shape is declared once in @detl/config, shared with libs/data which produces it.
export type { LabelledImages };

const MAGIC = 'DETLIMG1';

/** Throws unless the buffers agree with `count` and `size`; names what disagrees. */
export function assertLabelledImages(images: LabelledImages, what = 'images'): void {
  const { count, size } = images;
  if (!Number.isInteger(count) || count < 0 || !Number.isInteger(size) || size < 1) {
    throw new Error(`${what}: count ${count} / size ${size} must be non-negative / positive integers`);
  }
  if (images.pixels.length !== count * size * size) {
    throw new Error(`${what}: ${images.pixels.length} pixel bytes, expected count*size*size = ${count}*${size}*${size} = ${count * size * size}`);
  }
  if (images.labels.length !== count) {
    throw new Error(`${what}: ${images.labels.length} labels for ${count} images`);
  }
}

/**
 * Writes images to one file: `DETLIMG1`, a uint32 LE header length, a JSON header
 * `{count,size}`, the pixel bytes, then the labels as int32 LE. Used to hand a data set to the
 * training child process without serialising it through IPC.
 */
export async function writeLabelledImages(path: string, images: LabelledImages): Promise<void> {
  assertLabelledImages(images, path);
  const header = Buffer.from(JSON.stringify({ count: images.count, size: images.size }), 'utf8');
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.length, MAGIC.length);
  const labels = Buffer.alloc(images.count * 4);
  images.labels.forEach((label, i) => labels.writeInt32LE(label, i * 4));
  const file = await open(path, 'w');
  try {
    await file.writev([prefix, header, images.pixels, labels]);
  } finally {
    await file.close();
  }
}

/**
 * Reads a file written by {@link writeLabelledImages}.
 * @throws naming the path when the file is not in that format or is truncated.
 */
export async function readLabelledImages(path: string): Promise<LabelledImages> {
  const bytes = await readFile(path);
  if (bytes.length < MAGIC.length + 4 || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new Error(`${path}: not a detl labelled-images file (missing ${MAGIC} header)`);
  }
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  let header: { count: number; size: number };
  try {
    header = JSON.parse(bytes.toString('utf8', headerStart, headerStart + headerLength)) as { count: number; size: number };
  } catch {
    throw new Error(`${path}: unreadable labelled-images header`);
  }
  const { count, size } = header;
  const pixelStart = headerStart + headerLength;
  const labelStart = pixelStart + count * size * size;
  if (bytes.length !== labelStart + count * 4) {
    throw new Error(`${path}: ${bytes.length} bytes, expected ${labelStart + count * 4} for ${count} images of ${size}x${size}`);
  }
  const pixels = new Uint8Array(bytes.subarray(pixelStart, labelStart));
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i += 1) labels[i] = bytes.readInt32LE(labelStart + i * 4);
  return { pixels, labels, count, size };
}
