import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { SkippedFile } from './catalog';
import { mapLimit } from './concurrency';
import { DatasetError } from './errors';
import { sha256Hex } from './random';

/** A file that decoded completely, with the SHA-256 of its bytes. */
export interface CheckedImage {
  /** Path relative to the dataset root, `/`-separated. */
  file: string;
  absolute: string;
  sha256: string;
}

/**
 * Reads, hashes and fully decodes every file (in parallel, order kept). An unreadable one — zero
 * bytes, not PNG / JPEG, truncated — either stops with a {@link DatasetError} naming it or is
 * reported in `skipped`, per `onCorruptImage`. A missing file always stops.
 */
export async function checkImages(
  files: readonly { file: string; absolute: string }[],
  onCorruptImage: 'fail' | 'skip',
  onProgress?: (progress: { phase: string; done: number; total: number }) => void,
): Promise<{ checked: CheckedImage[]; skipped: SkippedFile[] }> {
  const skipped: SkippedFile[] = [];
  let done = 0;
  const results = await mapLimit(files, 4, async ({ file, absolute }) => {
    const bytes = await readFile(absolute).catch((error: NodeJS.ErrnoException) => {
      throw new DatasetError(`${absolute}: cannot read image (${error.code ?? error.message})`, { file: absolute });
    });
    const problem = await decodeProblem(bytes);
    onProgress?.({ phase: 'import', done: (done += 1), total: files.length });
    if (problem) {
      const reason = `${absolute}: unreadable image (${problem})`;
      if (onCorruptImage === 'fail') throw new DatasetError(`${reason}; set dataset.onCorruptImage to "skip" to leave it out`, { file: absolute });
      skipped.push({ path: file, reason });
      return null;
    }
    return { file, absolute, sha256: sha256Hex(bytes) };
  });
  return { checked: results.filter((r): r is CheckedImage => r !== null), skipped };
}

/** Why the bytes are not a decodable PNG / JPEG, or null when they decode completely. */
async function decodeProblem(bytes: Uint8Array): Promise<string | null> {
  if (bytes.byteLength === 0) return 'zero-byte file';
  try {
    // A full decode, not just the header: truncated files have valid headers.
    const image = sharp(bytes, { failOn: 'truncated' });
    const { format } = await image.metadata();
    if (format !== 'png' && format !== 'jpeg') return `unsupported format ${format ?? 'unknown'}`;
    await image.raw().toBuffer();
    return null;
  } catch (error) {
    return (error as Error).message.trim() || 'decode failed';
  }
}
