import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { detlHomeNotice, findCheckoutRoot, findDetlHome, loadServiceSettings } from './service-settings';

// A fake checkout (a package.json named detl) with a nested folder, and a folder outside any checkout.
function folders() {
  const root = mkdtempSync(path.join(os.tmpdir(), 'detl-home-'));
  const checkout = path.join(root, 'checkout');
  const nested = path.join(checkout, 'apps', 'cli', 'src');
  const outside = path.join(root, 'elsewhere', 'deeper');
  mkdirSync(nested, { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(path.join(checkout, 'package.json'), JSON.stringify({ name: 'detl' }));
  // A package.json of another project (and a broken one) between the checkout and the cwd is not a checkout.
  writeFileSync(path.join(checkout, 'apps', 'cli', 'package.json'), JSON.stringify({ name: '@detl/cli' }));
  writeFileSync(path.join(root, 'elsewhere', 'package.json'), '{ not json');
  return { root, checkout, nested, outside, installation: path.join(root, 'installed') };
}

describe('DETL_HOME discovery', () => {
  it('finds the checkout\'s .detl from anywhere inside it', () => {
    const f = folders();
    expect(findCheckoutRoot(f.nested)).toBe(f.checkout);
    for (const cwd of [f.checkout, f.nested]) {
      expect(findDetlHome({}, cwd, f.installation)).toEqual({ home: path.join(f.checkout, '.detl'), foundBy: 'checkout' });
      expect(loadServiceSettings({}, cwd).home).toBe(path.join(f.checkout, '.detl'));
    }
    expect(detlHomeNotice(findDetlHome({}, f.nested, f.installation))).toBeNull();
  });

  it('outside any checkout uses the installation\'s home and says so, with how to point at another', () => {
    const f = folders();
    expect(findCheckoutRoot(f.outside)).toBeNull();
    const found = findDetlHome({}, f.outside, f.installation);
    expect(found).toEqual({ home: path.join(f.installation, '.detl'), foundBy: 'installation' });
    expect(detlHomeNotice(found)).toBe(
      `detl: using ${path.join(f.installation, '.detl')} (the home of the detl checkout this command runs from; you are outside it) — set DETL_HOME=<folder> to use another`,
    );
    // Without an injected installation it is this repository's own .detl, never ./.detl of the cwd.
    expect(loadServiceSettings({}, f.outside).home).toBe(path.resolve(__dirname, '../../../.detl'));
  });

  it('DETL_HOME wins, relative to the current directory, and needs no notice', () => {
    const f = folders();
    expect(findDetlHome({ DETL_HOME: 'data' }, f.nested, f.installation)).toEqual({ home: path.join(f.nested, 'data'), foundBy: 'env' });
    expect(loadServiceSettings({ DETL_HOME: '/srv/detl' }, f.outside).home).toBe('/srv/detl');
    expect(detlHomeNotice(findDetlHome({ DETL_HOME: '/srv/detl' }, f.outside))).toBeNull();
  });
});
