import { describe, expect, it } from 'vitest';
import { InvalidObjectKeyError, validateKeyPrefix, validateObjectKey } from './object-key';

describe('validateObjectKey', () => {
  it.each(['shards/ab12.u8', 'experiments/e1/folds/0/final/model.json', 'a', 'name with spaces/ü.png'])('accepts %j', (key) => {
    expect(validateObjectKey(key)).toBe(key);
  });

  it.each([
    ['empty', '', /empty/],
    ['absolute', '/shards/x', /absolute/],
    ['climbing', 'experiments/../secrets', /"\.\." segment/],
    ['just dot-dot', '..', /"\.\." segment/],
    ['dotted', 'a/./b', /"\." segment/],
    ['double slash', 'a//b', /empty segment/],
    ['trailing slash', 'a/b/', /empty segment/],
    ['backslashed', 'a\\b', /backslash/],
    ['multi-line', 'a\nb', /control character/],
    ['too long', 'k'.repeat(1025), /longer than 1024 bytes/],
  ])('rejects a key that is %s', (_label, key, reason) => {
    expect(() => validateObjectKey(key)).toThrow(InvalidObjectKeyError);
    expect(() => validateObjectKey(key)).toThrow(reason);
  });

  it('names the key in the message', () => {
    expect(() => validateObjectKey('runs/../../etc/passwd')).toThrow('invalid object key "runs/../../etc/passwd"');
  });
});

describe('validateKeyPrefix', () => {
  it.each(['', 'shards/', 'experiments/e1', 'experiments/e1/folds/'])('accepts %j', (prefix) => {
    expect(validateKeyPrefix(prefix)).toBe(prefix);
  });

  it.each(['/', '/shards/', '../', 'a//', 'a\\'])('rejects %j', (prefix) => {
    expect(() => validateKeyPrefix(prefix)).toThrow(InvalidObjectKeyError);
  });
});
