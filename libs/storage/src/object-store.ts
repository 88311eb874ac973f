/** What was stored: enough to record the object as a tracked artifact. */
export interface StoredObject {
  /** Key inside the bucket, `/`-separated, never absolute, never containing `..`. */
  key: string;
  sizeBytes: number;
  /** Lower-case hex SHA-256 of the stored bytes. */
  sha256: string;
  /** MIME type the object was stored with. */
  contentType: string;
}

/**
 * The object store every stage reads and writes through (S3 in every mode: MinIO, AWS, any
 * S3-compatible server). Keys are validated; writes are whole-object and therefore atomic.
 */
export interface ObjectStore {
  /** Bucket the keys live in, for display (`s3://bucket/key`). */
  readonly bucket: string;
  putObject(key: string, body: Uint8Array | string, contentType?: string): Promise<StoredObject>;
  /** @throws ObjectNotFoundError when the key does not exist. */
  getObject(key: string): Promise<Uint8Array>;
  /** Size of the object, or null when it does not exist. */
  headObject(key: string): Promise<{ sizeBytes: number } | null>;
  /** Every key under the prefix, sorted. */
  listKeys(prefix: string): Promise<string[]>;
  deleteObject(key: string): Promise<void>;
  /** `s3://bucket/key`, for messages and run records. */
  uri(key: string): string;
}

/** Raised by {@link ObjectStore.getObject} for a missing key. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}
