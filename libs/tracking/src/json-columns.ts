import { z } from 'zod';
import {
  attemptDetailsSchema,
  classificationReportSchema,
  confusionMatrixSchema,
  experimentConfigColumnSchema,
  resultSummarySchema,
  sweepPlanEntrySchema,
  sweepSpecColumnSchema,
} from './json-shapes';
import { TrackingError } from './tracking-types';

/**
 * Reading the JSON columns. PostgreSQL only knows they hold JSON; the schemas of `json-shapes.ts`
 * say what the JSON is, and every read parses with them, so a malformed row fails loudly where it
 * is read (naming the table, column and row) instead of as `undefined` somewhere downstream.
 */

/** Where a JSON value was read from, for the error of a malformed one. */
export interface JsonColumnSource {
  table: string;
  column: string;
  /** The row's id. */
  id: string;
}

/**
 * Parses a JSON column's value with its schema.
 * @throws TrackingError `invalid_row` naming the table, column and row id and each bad field.
 */
export function parseJsonColumn<S extends z.ZodType>(schema: S, value: unknown, source: JsonColumnSource): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.map(String).join('.') : '(value)'}: ${issue.message}`);
  throw new TrackingError('invalid_row', `${source.table}.${source.column} of row ${source.id} is malformed: ${problems.join('; ')}`);
}

/** {@link parseJsonColumn} for a nullable column: null stays null. */
export function parseNullableJsonColumn<S extends z.ZodType>(schema: S, value: unknown, source: JsonColumnSource): z.output<S> | null {
  return value === null || value === undefined ? null : parseJsonColumn(schema, value, source);
}

/** The parsed JSON columns of an `experiments` row. */
export function experimentColumns(row: { id: string; config: unknown; summary: unknown }) {
  const source = { table: 'experiments', id: row.id };
  return {
    config: parseJsonColumn(experimentConfigColumnSchema, row.config, { ...source, column: 'config' }),
    summary: parseNullableJsonColumn(resultSummarySchema, row.summary, { ...source, column: 'summary' }),
  };
}

/** The parsed JSON columns of a `folds` row. */
export function foldColumns(row: { id: string; confusionMatrix: unknown; report: unknown }) {
  return {
    confusionMatrix: parseNullableJsonColumn(confusionMatrixSchema, row.confusionMatrix, { table: 'folds', column: 'confusion_matrix', id: row.id }),
    report: parseNullableJsonColumn(classificationReportSchema, row.report, { table: 'folds', column: 'report', id: row.id }),
  };
}

/** The parsed `details` of a `stage_attempts` row (an empty object when none were recorded). */
export function attemptDetails(row: { id: string; details: unknown }): Record<string, unknown> {
  return parseNullableJsonColumn(attemptDetailsSchema, row.details, { table: 'stage_attempts', column: 'details', id: row.id }) ?? {};
}

/** The parsed JSON columns of a `sweeps` row. */
export function sweepColumns(row: { id: string; spec: unknown; plan: unknown }) {
  return {
    spec: parseJsonColumn(sweepSpecColumnSchema, row.spec, { table: 'sweeps', column: 'spec', id: row.id }),
    plan: parseJsonColumn(sweepPlanEntrySchema.array(), row.plan, { table: 'sweeps', column: 'plan', id: row.id }),
  };
}
