import { createHash } from 'node:crypto';
import { validateObjectKey } from './object-key';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from './object-store';

/**
 * An {@link ObjectStore} held in memory, for unit tests of code that only needs the interface.
 * It validates keys with the real store's rules so tests catch bad keys; it is not a stand-in for
 * S3 in integration tests (those run against MinIO). `puts` counts writes so tests can prove reuse.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly bucket = 'memory';
  /** Every putObject call, in order, by key. */
  readonly puts: string[] = [];
  private readonly objects = new Map<string, Uint8Array>();

  /** Content types by key, as the real store would keep them. */
  readonly contentTypes = new Map<string, string>();

  async putObject(key: string, body: Uint8Array | string, contentType = 'application/octet-stream'): Promise<StoredObject> {
    validateObjectKey(key);
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : Uint8Array.from(body);
    this.objects.set(key, bytes);
    this.puts.push(key);
    this.contentTypes.set(key, contentType);
    return { key, sizeBytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex'), contentType };
  }

  async getObject(key: string): Promise<Uint8Array> {
    validateObjectKey(key);
    const bytes = this.objects.get(key);
    if (!bytes) throw new ObjectNotFoundError(key);
    return Uint8Array.from(bytes);
  }

  async headObject(key: string): Promise<{ sizeBytes: number } | null> {
    validateObjectKey(key);
    const bytes = this.objects.get(key);
    return bytes ? { sizeBytes: bytes.byteLength } : null;
  }

  async listKeys(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  async deleteObject(key: string): Promise<void> {
    this.objects.delete(key);
  }

  uri(key: string): string {
    return `memory://${this.bucket}/${key}`;
  }
}

