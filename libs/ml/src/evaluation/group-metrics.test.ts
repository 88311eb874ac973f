import { describe, expect, it } from 'vitest';
import { accuracyByClassAndSource } from './group-metrics';

const classes = ['normal', 'pneumonia', 'other_disease', 'covid'];

describe('accuracyByClassAndSource', () => {
  it('scores every (class, source) cell and names the worst among cells of at least minImages', () => {
    // covid from hospital-b: 1 of 5 right; a 2-image normal cell at 0% is too small to be the worst.
    const rows: [number, number, string][] = [
      ...Array.from({ length: 5 }, (_, i): [number, number, string] => [3, i === 0 ? 3 : 1, 'hospital-b']),
      ...Array.from({ length: 6 }, (): [number, number, string] => [3, 3, 'hospital-a']),
      [0, 1, 'kids'],
      [0, 2, 'kids'],
      ...Array.from({ length: 8 }, (_, i): [number, number, string] => [0, i < 6 ? 0 : 1, 'hospital-a']),
    ];
    const result = accuracyByClassAndSource(
      rows.map((r) => r[0]),
      rows.map((r) => r[1]),
      rows.map((r) => r[2]),
      classes,
    );
    expect(result.cells).toEqual([
      { className: 'normal', source: 'hospital-a', total: 8, correct: 6, accuracy: 0.75 },
      { className: 'normal', source: 'kids', total: 2, correct: 0, accuracy: 0 },
      { className: 'covid', source: 'hospital-a', total: 6, correct: 6, accuracy: 1 },
      { className: 'covid', source: 'hospital-b', total: 5, correct: 1, accuracy: 0.2 },
    ]);
    expect(result.worst).toEqual({ className: 'covid', source: 'hospital-b', total: 5, correct: 1, accuracy: 0.2 });
    expect(accuracyByClassAndSource([0, 0], [1, 1], ['kids', 'kids'], classes, { minImages: 1 }).worst?.source).toBe('kids');
    expect(accuracyByClassAndSource([0], [0], ['kids'], classes).worst).toBeNull();
  });

  it('rejects mismatched lengths, unknown labels and missing sources', () => {
    expect(() => accuracyByClassAndSource([0, 1], [0], ['a', 'b'], classes)).toThrow(/differ in length/);
    expect(() => accuracyByClassAndSource([4], [0], ['a'], classes)).toThrow(/actual\[0\] = 4/);
    expect(() => accuracyByClassAndSource([0], [0], [''], classes)).toThrow(/sources\[0\] is empty/);
    expect(() => accuracyByClassAndSource([0], [0], ['a'], classes, { minImages: 0 })).toThrow(/minImages/);
  });
});
