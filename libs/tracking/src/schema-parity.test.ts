import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPrismaDatamodel, type DmmfDatamodel, type DmmfField } from './prisma-dmmf';
import { createTestDatabase, type TestDatabase } from './test-database';

// The migrations are written by hand (the schema engine cannot run here), so this test is what keeps
// them and prisma/schema.prisma saying the same thing: both are reduced to one line per enum, column,
// key, index and foreign key, and the two lists must be equal.

const SCHEMA_PATH = path.resolve(__dirname, '../../../prisma/schema.prisma');

// Defaults Prisma computes in the client, which therefore leave no trace in the database.
const CLIENT_SIDE_DEFAULTS = new Set(['uuid', 'cuid', 'nanoid', 'ulid']);
const REFERENTIAL_ACTIONS: Record<string, string> = { a: 'NoAction', r: 'Restrict', c: 'Cascade', n: 'SetNull', d: 'SetDefault' };

function columnType(field: DmmfField, enumTables: Map<string, string>): string {
  if (field.kind === 'enum') return enumTables.get(field.type) ?? field.type;
  const [native, args] = field.nativeType ?? [undefined, []];
  switch (field.type) {
    case 'String':
      return native === 'Uuid' ? 'uuid' : native === 'VarChar' ? `varchar(${args[0] ?? ''})` : 'text';
    case 'Int':
      return 'int4';
    case 'BigInt':
      return 'int8';
    case 'Float':
      return 'float8';
    case 'Boolean':
      return 'bool';
    case 'Json':
      return native === 'Json' ? 'json' : 'jsonb';
    case 'DateTime':
      return `${native === 'Timestamptz' ? 'timestamptz' : 'timestamp'}(${args[0] ?? '3'})`;
    default:
      return `unmapped:${field.type}`;
  }
}

/** The column default PostgreSQL reports for a field's `@default`, or null when Prisma computes it in the client. */
function renderDefault(field: DmmfField, type: string): string | null {
  const value = field.default;
  if (value === undefined) return null;
  if (typeof value === 'object') {
    if (CLIENT_SIDE_DEFAULTS.has(value.name)) return null;
    if (value.name === 'now') return 'CURRENT_TIMESTAMP';
    if (value.name === 'dbgenerated') return String(value.args[0]);
    return `unmapped:${value.name}()`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  // PostgreSQL keeps a literal default as a cast to the column type, without its precision.
  return `'${value.replace(/'/g, "''")}'::${type.replace(/\(.*\)$/, '')}`;
}

/** What schema.prisma says the database must contain. */
function expectedFromSchema(datamodel: DmmfDatamodel): string[] {
  const lines: string[] = [];
  const enumTables = new Map(datamodel.enums.map((e) => [e.name, e.dbName ?? e.name]));
  for (const e of datamodel.enums) lines.push(`enum ${e.dbName ?? e.name} (${e.values.map((v) => v.dbName ?? v.name).join(', ')})`);
  const tableOf = new Map(datamodel.models.map((model) => [model.name, model.dbName ?? model.name]));
  const columnOf = (modelName: string, fieldName: string): string => {
    const field = datamodel.models.find((model) => model.name === modelName)?.fields.find((f) => f.name === fieldName);
    return field?.dbName ?? fieldName;
  };
  for (const model of datamodel.models) {
    const table = tableOf.get(model.name) ?? model.name;
    for (const field of model.fields) {
      if (field.kind === 'object') {
        if (!field.relationFromFields?.length) continue;
        const from = field.relationFromFields.map((f) => columnOf(model.name, f));
        const to = (field.relationToFields ?? []).map((f) => columnOf(field.type, f));
        // Prisma's defaults: Restrict for a required relation, SetNull for an optional one; updates cascade.
        const onDelete = field.relationOnDelete ?? (field.isRequired ? 'Restrict' : 'SetNull');
        lines.push(`fk ${table}_${from.join('_')}_fkey ${table}(${from.join(', ')}) -> ${tableOf.get(field.type)}(${to.join(', ')}) delete ${onDelete} update Cascade`);
        continue;
      }
      const type = columnType(field, enumTables);
      const dbDefault = field.hasDefaultValue ? renderDefault(field, type) : null;
      lines.push(
        `column ${table}.${field.dbName ?? field.name} ${type}${field.isList ? '[]' : ''} ${field.isRequired ? 'not null' : 'null'}${dbDefault === null ? '' : ` default ${dbDefault}`}`,
      );
    }
  }
  for (const index of datamodel.indexes) {
    const table = tableOf.get(index.model) ?? index.model;
    const columns = index.fields.map((f) => columnOf(index.model, f.name));
    const rendered = index.fields.map((f, i) => `${columns[i]}${f.sortOrder === 'desc' ? ' DESC' : ''}`).join(', ');
    const suffix = index.type === 'id' ? 'pkey' : index.type === 'unique' ? 'key' : 'idx';
    const name = index.dbName ?? (index.type === 'id' ? `${table}_pkey` : `${table}_${columns.join('_')}_${suffix}`);
    const kind = index.type === 'id' ? 'primary' : index.type === 'unique' ? 'unique' : 'index';
    lines.push(`${kind} ${name} ${table}(${rendered})`);
  }
  return lines.sort();
}

/** What the migrated database contains, in the same notation. */
async function actualFromDatabase(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const lines: string[] = [];
    const enums = await client.query<{ name: string; labels: string[] }>(
      `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public' GROUP BY t.typname`,
    );
    for (const row of enums.rows) lines.push(`enum ${row.name} (${row.labels.join(', ')})`);
    const columns = await client.query<{ table_name: string; column_name: string; udt_name: string; data_type: string; datetime_precision: number | null; is_nullable: string; column_default: string | null }>(
      `SELECT table_name, column_name, udt_name, data_type, datetime_precision, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`,
    );
    for (const c of columns.rows) {
      const array = c.data_type === 'ARRAY';
      const base = array ? c.udt_name.replace(/^_/, '') : c.udt_name;
      const type = base.startsWith('timestamp') ? `${base}(${c.datetime_precision})` : base;
      lines.push(`column ${c.table_name}.${c.column_name} ${type}${array ? '[]' : ''} ${c.is_nullable === 'YES' ? 'null' : 'not null'}${c.column_default === null ? '' : ` default ${c.column_default}`}`);
    }
    const indexes = await client.query<{ table_name: string; index_name: string; is_primary: boolean; is_unique: boolean; columns: string }>(
      `SELECT t.relname AS table_name, i.relname AS index_name, ix.indisprimary AS is_primary, ix.indisunique AS is_unique,
              (SELECT string_agg(a.attname || CASE WHEN (ix.indoption[k.n] & 1) = 1 THEN ' DESC' ELSE '' END, ', ' ORDER BY k.n)
                 FROM generate_series(0, ix.indnkeyatts - 1) AS k(n)
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ix.indkey[k.n]) AS columns
       FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       WHERE n.nspname = 'public' AND t.relname <> '_prisma_migrations'`,
    );
    for (const ix of indexes.rows) {
      const kind = ix.is_primary ? 'primary' : ix.is_unique ? 'unique' : 'index';
      lines.push(`${kind} ${ix.index_name} ${ix.table_name}(${ix.columns})`);
    }
    const foreignKeys = await client.query<{ name: string; table_name: string; columns: string; target: string; target_columns: string; on_delete: string; on_update: string }>(
      `SELECT c.conname AS name, t.relname AS table_name, ft.relname AS target, c.confdeltype AS on_delete, c.confupdtype AS on_update,
              (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns,
              (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS target_columns
       FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class ft ON ft.oid = c.confrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       WHERE c.contype = 'f' AND n.nspname = 'public'`,
    );
    for (const fk of foreignKeys.rows) {
      lines.push(
        `fk ${fk.name} ${fk.table_name}(${fk.columns}) -> ${fk.target}(${fk.target_columns}) delete ${REFERENTIAL_ACTIONS[fk.on_delete]} update ${REFERENTIAL_ACTIONS[fk.on_update]}`,
      );
    }
    return lines.sort();
  } finally {
    await client.end();
  }
}

let database: TestDatabase;
let datamodel: DmmfDatamodel;

beforeAll(async () => {
  datamodel = readPrismaDatamodel(SCHEMA_PATH);
  database = await createTestDatabase();
});

afterAll(async () => {
  await database?.drop();
});

describe('prisma/migrations against prisma/schema.prisma', () => {
  it('creates exactly the enums, columns, keys, indexes and foreign keys the schema declares', async () => {
    const expected = expectedFromSchema(datamodel);
    // A sanity floor, so an empty or unparsed schema cannot pass by comparing two empty lists.
    expect(expected.filter((line) => line.startsWith('column ')).length).toBeGreaterThanOrEqual(75);
    expect(await actualFromDatabase(database.url)).toEqual(expected);
  });

  it('notices when the schema and the database disagree', async () => {
    const actual = await actualFromDatabase(database.url);
    const edited = structuredClone(datamodel);
    const model = edited.models.find((m) => m.name === 'Experiment');
    const field = model?.fields.find((f) => f.name === 'backend');
    expect(field?.isRequired).toBe(false);
    field!.isRequired = true;
    edited.indexes = edited.indexes.filter((index) => !(index.model === 'Artifact' && index.type === 'normal'));
    const differences = expectedFromSchema(edited).filter((line) => !actual.includes(line));
    expect(differences).toEqual(['column experiments.backend text not null']);
    const status = model?.fields.find((f) => f.name === 'status');
    expect(status?.default).toBe('queued');
    expect(actual.filter((line) => !expectedFromSchema(edited).includes(line))).toEqual([
      'column experiments.backend text null',
      'index artifacts_experiment_id_kind_idx artifacts(experiment_id, kind)',
    ]);
  });
});
