import { z } from 'zod';
import { MODEL_FILES } from '@detl/storage';
import { EXPERIMENT_STATUSES, MAX_COMPARED_RUNS, MAX_RUN_PAGE_SIZE, MAX_SWEEP_PAGE_SIZE, RUN_SORT_FIELDS } from '@detl/tracking';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A comma-separated list in one query parameter (`status=failed,running`), each item checked by `item`. */
function commaList<T extends z.ZodType<string, string>>(item: T, max: number) {
  return z
    .string()
    .max(2000)
    .transform((value) => value.split(',').map((part) => part.trim()).filter((part) => part.length > 0))
    .pipe(z.array(item).max(max));
}

/** `YYYY-MM-DD` (midnight UTC) or a full ISO timestamp. */
const dateParam = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/, 'expected YYYY-MM-DD or an ISO timestamp')
  .transform((value, context) => {
    const date = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(date.getTime())) {
      context.addIssue({ code: 'custom', message: 'not a valid date' });
      return z.NEVER;
    }
    return date;
  });

/** Query of `GET /api/runs`. Unknown parameters are refused so a typo never silently shows everything. */
export const runListQuerySchema = z
  .strictObject({
    page: z.coerce.number().int().min(1).max(1_000_000).default(1),
    pageSize: z.coerce.number().int().min(1).max(MAX_RUN_PAGE_SIZE).default(25),
    sort: z.enum(RUN_SORT_FIELDS).default('createdAt'),
    order: z.enum(['asc', 'desc']).default('desc'),
    status: commaList(z.enum(EXPERIMENT_STATUSES), EXPERIMENT_STATUSES.length).optional(),
    architecture: commaList(z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'expected an architecture name such as small-vgg'), 10).optional(),
    from: dateParam.optional(),
    to: dateParam.optional(),
    q: z.string().max(200).optional(),
    sweep: z.string().regex(UUID, 'expected a sweep id (UUID)').optional(),
  })
  .refine((query) => !query.from || !query.to || query.from <= query.to, { path: ['to'], message: 'must not be before from' });

/** Query of `GET /api/sweeps`. */
export const sweepListQuerySchema = z.strictObject({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(MAX_SWEEP_PAGE_SIZE).default(20),
});

/** The `:id` of sweep routes. */
export const sweepIdParamSchema = z.strictObject({ id: z.string().regex(UUID, 'expected a sweep id (UUID)') });

// The model files of one fold that the browser's tfjs loads (the storage layout's MODEL_FILES:
// model.json and the weights.bin it points at) — never optimizer state or anything else under the prefix.

/** Path of `GET /api/runs/:id/models/:fold/:file`. */
export const modelFileParamSchema = z.strictObject({
  id: z.string().regex(UUID, 'expected a run id (UUID)'),
  fold: z.coerce.number().int().min(0).max(99),
  file: z.enum(MODEL_FILES),
});

/** Path of `GET /api/runs/:id/gallery/:entry/image`: an entry of the run's gallery, by position. */
export const galleryImageParamSchema = z.strictObject({
  id: z.string().regex(UUID, 'expected a run id (UUID)'),
  entry: z.coerce.number().int().min(0).max(100_000),
});

/** The `:id` of run routes. */
export const runIdParamSchema = z.strictObject({ id: z.string().regex(UUID, 'expected a run id (UUID)') });

/** Query of `GET /api/runs/:id/artifact`. */
export const artifactQuerySchema = z.strictObject({ key: z.string().min(1).max(1024) });

/** Query of `GET /api/compare`: 2 to 5 distinct run ids. */
export const compareQuerySchema = z.strictObject({
  ids: commaList(z.string().regex(UUID, 'expected run ids (UUIDs)'), MAX_COMPARED_RUNS).refine(
    (ids) => ids.length >= 2 && new Set(ids.map((id) => id.toLowerCase())).size === ids.length,
    `expected 2 to ${MAX_COMPARED_RUNS} distinct run ids`,
  ),
});

/** Body of every 400 answer: the first offending field and what was wrong with it. */
export interface BadRequestBody {
  error: string;
  field: string;
  issues: { field: string; message: string }[];
}

/** Turns a zod error into a {@link BadRequestBody} that names the parameter. */
export function badRequestBody(error: z.core.$ZodError): BadRequestBody {
  const issues = error.issues.map((issue) => {
    // Unknown keys are reported on the object; name the key itself.
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    // The parameter itself is the field; an item of a comma list is named by its position.
    const [parameter, ...rest] = issue.path.map(String);
    const field = keys.length > 0 ? keys.join(', ') : (parameter ?? 'query');
    const where = rest.length > 0 ? ` (item ${Number(rest[0]) + 1})` : '';
    return { field, message: issue.code === 'unrecognized_keys' ? 'unknown parameter' : `${issue.message}${where}` };
  });
  const first = issues[0] ?? { field: 'query', message: 'invalid' };
  return { error: `invalid ${first.field}: ${first.message}`, field: first.field, issues };
}
