import { parse } from 'csv-parse/sync';
import { DatasetError } from './errors';

/** One data row of a CSV file with its 1-based line number, values by header name. */
export interface CsvRow {
  line: number;
  values: Record<string, string>;
}

/** A parsed CSV with the header kept for error messages. */
export interface CsvTable {
  file: string;
  header: string[];
  rows: CsvRow[];
}

/**
 * Parses a CSV with a header row.
 * @param file path, quoted in errors.
 * @param required columns that must be present; a missing one is reported by name.
 * @throws DatasetError for malformed CSV (with its line) or a missing column.
 */
export function parseCsv(text: string, file: string, required: readonly string[]): CsvTable {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { bom: true, info: true, skip_empty_lines: true, relax_quotes: false, trim: false }) as unknown as {
      record: string[];
      info: { lines: number };
    }[];
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    throw new DatasetError(`${file}${line ? `:${line}` : ''}: malformed CSV: ${(error as Error).message}`, { file, ...(line ? { line } : {}) });
  }
  const headerRecord = records[0];
  if (!headerRecord) throw new DatasetError(`${file}: empty CSV, expected a header with columns ${required.join(', ')}`, { file });
  const header = headerRecord.record.map((name) => name.trim());
  for (const column of required) {
    if (!header.includes(column)) {
      throw new DatasetError(`${file}:1: missing column "${column}" (header has: ${header.join(', ')})`, { file, line: 1, column });
    }
  }
  const rows = records.slice(1).map(({ record, info }) => {
    const values: Record<string, string> = {};
    header.forEach((name, index) => {
      values[name] = (record[index] ?? '').trim();
    });
    return { line: info.lines, values };
  });
  return { file, header, rows };
}

/** `file:line column "name"`, the location format of every CSV error. */
export function csvLocation(file: string, line: number, column: string): string {
  return `${file}:${line} column "${column}"`;
}
