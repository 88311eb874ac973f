import { z } from 'zod';
import { ConfigError, experimentConfigSchema, type ExperimentConfig } from './experiment-config';

/** Dotted paths of the leaf values of {@link ExperimentConfig}, e.g. `dataset.imageSize`. */
export type ConfigPath = LeafPaths<ExperimentConfig>;

/** The type of the value at a {@link ConfigPath}, e.g. `number | null` for `dataset.degradeToPixels`. */
export type ConfigValue<P extends ConfigPath> = ValueAt<ExperimentConfig, P>;

type ValueAt<T, P extends string> = P extends `${infer Key}.${infer Rest}`
  ? Key extends keyof T
    ? ValueAt<T[Key], Rest>
    : never
  : P extends keyof T
    ? T[P]
    : never;

type LeafPaths<T, Prefix extends string = ''> = {
  [K in keyof T & string]: T[K] extends readonly unknown[]
    ? `${Prefix}${K}`
    : T[K] extends Record<string, unknown>
      ? LeafPaths<T[K], `${Prefix}${K}.`>
      : `${Prefix}${K}`;
}[keyof T & string];

/**
 * What the experiment schema says about one value: its description, default and bounds. Command-line
 * flags that set config values take their help text, default and checks from here, so the schema
 * stays the one place that defines them.
 */
export interface ConfigFieldInfo {
  path: ConfigPath;
  /** The schema's `.describe()` text. */
  description: string | undefined;
  /** The value an omitted field gets. */
  defaultValue: unknown;
  /** Accepts null (e.g. `dataset.degradeToPixels`: off). */
  nullable: boolean;
  /** Numeric range, when the field takes numbers. */
  number: NumberBounds | null;
  /** The allowed strings of an enum or string literal field (`auto`, `fail`…). */
  choices: readonly string[];
  /** What a valid value looks like, for messages: `an integer from 16 to 512`. */
  expected: string;
  /** The same for the numeric part alone (`runtime.threads` without `auto`); null when it takes no numbers. */
  expectedNumber: string | null;
  /** The field's own schema, defaults included: parses one value. */
  schema: z.ZodType;
}

/**
 * Describes one field of the experiment schema.
 * @throws Error when `path` does not name a leaf of the schema (a programming error).
 */
export function configField(path: ConfigPath): ConfigFieldInfo {
  let node: z.ZodType = experimentConfigSchema;
  for (const part of path.split('.')) {
    const object = unwrap(node).inner;
    const child = object instanceof z.ZodObject ? (object.shape as Record<string, z.ZodType>)[part] : undefined;
    if (!child) throw new Error(`experiment config has no field ${path}`);
    node = child;
  }
  const { inner, nullable, defaultValue } = unwrap(node);
  const members = inner instanceof z.ZodUnion ? (inner.options as z.ZodType[]) : [inner];
  const numberMember = members.find((member): member is z.ZodNumber => member instanceof z.ZodNumber);
  const choices = members.flatMap((member) =>
    member instanceof z.ZodEnum ? (member.options as string[]) : member instanceof z.ZodLiteral ? [...member.values].filter((v): v is string => typeof v === 'string') : [],
  );
  const number = numberMember ? numberBounds(numberMember) : null;
  return {
    path,
    description: node.description,
    defaultValue,
    nullable,
    number,
    choices,
    expected: describeExpected(number, choices),
    expectedNumber: number ? describeExpected(number, []) : null,
    schema: node,
  };
}

/** The range of a numeric field; a bound is exclusive when its `…Exclusive` flag says so. */
export interface NumberBounds {
  integer: boolean;
  min: number | undefined;
  minExclusive: boolean;
  max: number | undefined;
  maxExclusive: boolean;
}

/** Options of {@link parseConfigValue}. */
export interface ParseConfigValueOptions {
  /** How the value was given, quoted first in the message (`--image-size`). */
  origin: string;
  /** Accept only the numeric part of a field that also takes words (a worker's `--threads` has no `auto`). */
  numbersOnly?: boolean;
}

/**
 * Parses a command-line string as the value of one config field, with the schema's own checks.
 * Number-valued fields read the text as a number; enum fields take it as is.
 * @throws ConfigError naming the origin, the value, the field and what it expects, e.g.
 * `--image-size 8: dataset.imageSize: expected an integer from 16 to 512`.
 */
export function parseConfigValue<P extends ConfigPath>(path: P, text: string, options: ParseConfigValueOptions): ConfigValue<P> {
  const field = configField(path);
  const trimmed = text.trim();
  const value = field.number && trimmed !== '' && Number.isFinite(Number(trimmed)) ? Number(trimmed) : text;
  const numberOnlyProblem = options.numbersOnly && typeof value !== 'number';
  const result = field.schema.safeParse(value);
  if (!result.success || numberOnlyProblem) {
    const expected = options.numbersOnly ? (field.expectedNumber ?? field.expected) : field.expected;
    throw new ConfigError(`${options.origin} ${text}: ${path}: expected ${expected}`, [path]);
  }
  // The field's own schema produced it, and ConfigValue<P> is that schema's output type.
  return result.data as ConfigValue<P>;
}

/** Strips the default / prefault / nullable / optional wrappers of a field, noting what they said. */
function unwrap(schema: z.ZodType): { inner: z.ZodType; nullable: boolean; defaultValue: unknown } {
  let inner = schema;
  let nullable = false;
  let defaultValue: unknown = undefined;
  for (;;) {
    if (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault) {
      defaultValue ??= inner.def.defaultValue;
      inner = inner.unwrap() as z.ZodType;
    } else if (inner instanceof z.ZodNullable || inner instanceof z.ZodOptional) {
      nullable ||= inner instanceof z.ZodNullable;
      inner = inner.unwrap() as z.ZodType;
    } else {
      return { inner, nullable, defaultValue };
    }
  }
}

/** Reads the range checks of a number schema (`min`, `max`, `positive`, `lt`…); the tightest bound wins. */
function numberBounds(schema: z.ZodNumber): NumberBounds {
  const bounds: NumberBounds = { integer: schema.isInt, min: undefined, minExclusive: false, max: undefined, maxExclusive: false };
  for (const check of schema.def.checks ?? []) {
    const def = check._zod.def as { check: string; value?: unknown; inclusive?: boolean };
    if (typeof def.value !== 'number') continue;
    if (def.check === 'greater_than' && (bounds.min === undefined || def.value >= bounds.min)) {
      bounds.min = def.value;
      bounds.minExclusive = def.inclusive === false;
    } else if (def.check === 'less_than' && (bounds.max === undefined || def.value <= bounds.max)) {
      bounds.max = def.value;
      bounds.maxExclusive = def.inclusive === false;
    }
  }
  return bounds;
}

function describeExpected(number: ConfigFieldInfo['number'], choices: readonly string[]): string {
  const parts: string[] = [];
  if (choices.length > 0) parts.push(choices.length === 1 ? (choices[0] as string) : `one of ${choices.join(', ')}`);
  if (number) {
    const noun = number.integer ? 'an integer' : 'a number';
    const { min, max } = number;
    const inclusiveRange = min !== undefined && max !== undefined && !number.minExclusive && !number.maxExclusive;
    const lower = min === undefined ? null : number.minExclusive ? `greater than ${min}` : `of at least ${min}`;
    const upper = max === undefined ? null : number.maxExclusive ? `less than ${max}` : `at most ${max}`;
    parts.push(inclusiveRange ? `${noun} from ${min} to ${max}` : [noun, [lower, upper].filter((bound) => bound !== null).join(' and ')].filter(Boolean).join(' '));
  }
  return parts.join(' or ');
}
