/** Raised for a key (or prefix) that could escape its folder or be read differently by other tools. */
export class InvalidObjectKeyError extends Error {
  override readonly name = 'InvalidObjectKeyError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
  }
}

/** S3's limit on key length, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

// Control characters are legal in S3 keys but break XML listings, logs and file names on download.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

function check(key: string, allowTrailingSlash: boolean): string {
  if (key === '') throw new InvalidObjectKeyError(key, 'it is empty');
  if (key.startsWith('/')) throw new InvalidObjectKeyError(key, 'it is absolute (starts with "/")');
  if (key.includes('\\')) throw new InvalidObjectKeyError(key, 'it contains a backslash; use "/" to separate segments');
  if (CONTROL_CHARACTERS.test(key)) throw new InvalidObjectKeyError(key, 'it contains a control character');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new InvalidObjectKeyError(key, `it is longer than ${MAX_KEY_BYTES} bytes`);
  const body = allowTrailingSlash && key.endsWith('/') ? key.slice(0, -1) : key;
  for (const segment of body.split('/')) {
    if (segment === '') throw new InvalidObjectKeyError(key, 'it has an empty segment ("//" or a trailing "/")');
    // Downloads map keys to local paths, where these would climb out of the target folder.
    if (segment === '..' || segment === '.') throw new InvalidObjectKeyError(key, `it has a "${segment}" segment`);
  }
  return key;
}

/**
 * Checks an object key: `/`-separated, relative, no empty, `.` or `..` segments, no backslashes or
 * control characters, at most 1024 bytes.
 * @returns the key unchanged.
 * @throws InvalidObjectKeyError naming the key and the rule it breaks.
 */
export function validateObjectKey(key: string): string {
  return check(key, false);
}

/**
 * Checks a listing prefix: empty (the whole bucket) or a key-like string that may end in `/`.
 * @throws InvalidObjectKeyError naming the prefix and the rule it breaks.
 */
export function validateKeyPrefix(prefix: string): string {
  return prefix === '' ? prefix : check(prefix, true);
}
