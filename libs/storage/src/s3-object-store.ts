import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { ServiceSettings } from '@detl/config';
import { validateKeyPrefix, validateObjectKey } from './object-key';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from './object-store';

/** S3 connection settings: the `s3` part of {@link ServiceSettings}. */
export type S3Settings = ServiceSettings['s3'];

/** Tuning for {@link S3ObjectStore}. */
export interface S3ObjectStoreOptions {
  /**
   * Attempts per request under the SDK's standard retry strategy (exponential backoff with jitter on
   * throttling, 5xx and network errors). Default 5: a MinIO restarting under a worker should not fail
   * an activity, while a real outage still surfaces within seconds.
   */
  maxAttempts?: number;
}

/** Default attempts per S3 request; see {@link S3ObjectStoreOptions.maxAttempts}. */
export const DEFAULT_S3_MAX_ATTEMPTS = 5;

function isNotFound(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  return error.name === 'NoSuchKey' || error.name === 'NotFound' || error.$metadata.httpStatusCode === 404;
}

/** The {@link ObjectStore} over any S3-compatible server (MinIO, AWS S3, …). */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  /** The underlying client, for operations the store does not wrap. */
  readonly client: S3Client;

  constructor(settings: S3Settings, options: S3ObjectStoreOptions = {}) {
    this.bucket = settings.bucket;
    const credentials =
      settings.accessKeyId !== undefined && settings.secretAccessKey !== undefined
        ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey }
        : undefined; // the SDK's default chain: env, profile, instance role
    this.client = new S3Client({
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      credentials,
      maxAttempts: options.maxAttempts ?? DEFAULT_S3_MAX_ATTEMPTS,
      retryMode: 'standard',
    });
  }

  /**
   * Creates the bucket when it does not exist. Safe to call from several workers at once.
   * @throws the SDK error when the bucket exists but belongs to someone else or access is denied.
   */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      // Another worker created it between our HEAD and CREATE.
      if (error instanceof S3ServiceException && error.name === 'BucketAlreadyOwnedByYou') return;
      throw error;
    }
  }

  /**
   * Writes the whole object (atomic on S3) and returns its size and SHA-256, computed here so the
   * caller can record it without reading the object back.
   * @throws InvalidObjectKeyError for a bad key.
   */
  async putObject(key: string, body: Uint8Array | string, contentType?: string): Promise<StoredObject> {
    validateObjectKey(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const type = contentType ?? (typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream');
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: bytes,
        ContentType: type,
        // The server checks the bytes it received against this, so a corrupted upload fails
        // instead of being stored under a hash it does not have.
        ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
        Metadata: { sha256 },
      }),
    );
    return { key, sizeBytes: bytes.byteLength, sha256, contentType: type };
  }

  /**
   * @throws ObjectNotFoundError when the key does not exist.
   * @throws InvalidObjectKeyError for a bad key.
   */
  async getObject(key: string): Promise<Uint8Array> {
    validateObjectKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (response.Body === undefined) throw new Error(`empty response body for ${this.uri(key)}`);
      return await response.Body.transformToByteArray();
    } catch (error) {
      if (isNotFound(error)) throw new ObjectNotFoundError(key);
      throw error;
    }
  }

  /** Size of the object, or null when it does not exist. @throws InvalidObjectKeyError for a bad key. */
  async headObject(key: string): Promise<{ sizeBytes: number } | null> {
    validateObjectKey(key);
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { sizeBytes: response.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** Every key under the prefix (all pages), sorted. @throws InvalidObjectKeyError for a bad prefix. */
  async listKeys(prefix: string): Promise<string[]> {
    validateKeyPrefix(prefix);
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix: prefix })) {
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) keys.push(object.Key);
      }
    }
    // S3 lists in UTF-8 byte order; sorting here makes the order the same on every server.
    return keys.sort();
  }

  /** Deletes the object; deleting a missing key is not an error (S3 semantics). */
  async deleteObject(key: string): Promise<void> {
    validateObjectKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** `s3://bucket/key`. */
  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Closes the client's sockets; the store is unusable afterwards. */
  close(): void {
    this.client.destroy();
  }
}

/**
 * The object store for the configured S3 settings (`loadServiceSettings().s3`, or a whole
 * `ServiceSettings`). Call {@link S3ObjectStore.ensureBucket} once before the first write.
 */
export function createObjectStore(settings: S3Settings | ServiceSettings, options: S3ObjectStoreOptions = {}): S3ObjectStore {
  return new S3ObjectStore('s3' in settings ? settings.s3 : settings, options);
}
