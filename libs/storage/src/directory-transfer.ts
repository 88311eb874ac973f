import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectStore, StoredObject } from './object-store';

/**
 * Uploads every file under a local folder to `prefix/<relative path>`, e.g. a tfjs model folder
 * (model.json + weights.bin) or a checkpoint.
 */
export async function uploadDirectory(store: ObjectStore, directory: string, prefix: string): Promise<StoredObject[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(directory, path.join(entry.parentPath, entry.name)))
    .sort();
  const stored: StoredObject[] = [];
  for (const file of files) {
    const body = await readFile(path.join(directory, file));
    stored.push(await store.putObject(`${prefix}/${file.split(path.sep).join('/')}`, body, contentTypeOf(file)));
  }
  return stored;
}

/** Downloads every object under `prefix/` into a local folder, keeping relative paths; returns the folder. */
export async function downloadPrefix(store: ObjectStore, prefix: string, directory: string): Promise<string> {
  const keys = await store.listKeys(`${prefix}/`);
  if (keys.length === 0) throw new Error(`nothing stored under ${store.uri(prefix)}/`);
  for (const key of keys) {
    const target = path.join(directory, ...key.slice(prefix.length + 1).split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, await store.getObject(key));
  }
  return directory;
}

function contentTypeOf(file: string): string {
  if (file.endsWith('.json')) return 'application/json';
  if (file.endsWith('.png')) return 'image/png';
  return 'application/octet-stream';
}
