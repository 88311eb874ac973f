import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { ExperimentConfig } from '@detl/config';
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
 * @param cacheFile optional JSON file remembering files that decoded, by absolute path, size and
 *   modification time; an unchanged file is then neither decoded nor hashed again (a full decode of
 *   NIH's 112,120 1024 px PNGs takes most of an hour on two cores).
 */
export async function checkImages(
  files: readonly { file: string; absolute: string }[],
  onCorruptImage: ExperimentConfig['dataset']['onCorruptImage'],
  onProgress?: (progress: { phase: string; done: number; total: number }) => void,
  cacheFile?: string,
): Promise<{ checked: CheckedImage[]; skipped: SkippedFile[] }> {
  const skipped: SkippedFile[] = [];
  const cache = cacheFile ? await readCache(cacheFile) : new Map<string, CacheRecord>();
  const fresh = new Map<string, CacheRecord>();
  let done = 0;
  const results = await mapLimit(files, 4, async ({ file, absolute }) => {
    const info = cacheFile ? await stat(absolute).catch(() => null) : null;
    const known = info ? cache.get(absolute) : undefined;
    if (info && known && known.size === info.size && known.mtimeMs === info.mtimeMs) {
      fresh.set(absolute, known);
      onProgress?.({ phase: 'import', done: (done += 1), total: files.length });
      return { file, absolute, sha256: known.sha256 };
    }
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
    const sha256 = sha256Hex(bytes);
    if (info) fresh.set(absolute, { size: info.size, mtimeMs: info.mtimeMs, sha256 });
    return { file, absolute, sha256 };
  });
  if (cacheFile) await writeCache(cacheFile, fresh);
  return { checked: results.filter((r): r is CheckedImage => r !== null), skipped };
}

/** A file that decoded completely before, identified by size and modification time (as make does). */
interface CacheRecord {
  size: number;
  mtimeMs: number;
  sha256: string;
}

async function readCache(cacheFile: string): Promise<Map<string, CacheRecord>> {
  const text = await readFile(cacheFile, 'utf8').catch(() => null);
  if (text === null) return new Map();
  try {
    return new Map(Object.entries(JSON.parse(text) as Record<string, CacheRecord>));
  } catch {
    // A damaged cache only costs time: start over.
    return new Map();
  }
}

async function writeCache(cacheFile: string, records: Map<string, CacheRecord>): Promise<void> {
  await mkdir(path.dirname(cacheFile), { recursive: true });
  // Unique per write: the experiments of a sweep import one dataset at once in one worker process,
  // and a name per process let one write rename another's file away (ENOENT, a failed attempt).
  const temporary = `${cacheFile}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(temporary, JSON.stringify(Object.fromEntries([...records].sort((a, b) => (a[0] < b[0] ? -1 : 1)))));
  await rename(temporary, cacheFile);
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
