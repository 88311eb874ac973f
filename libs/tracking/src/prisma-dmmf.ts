import { readFileSync } from 'node:fs';
import path from 'node:path';

/** A field of a model, as Prisma's DMMF describes it (the subset this library reads). */
export interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: 'scalar' | 'object' | 'enum' | 'unsupported';
  isList: boolean;
  isRequired: boolean;
  isId: boolean;
  isUnique: boolean;
  hasDefaultValue: boolean;
  /** A literal, or `{ name, args }` for functions such as `now()`, `uuid()` or `dbgenerated(…)`. */
  default?: string | number | boolean | { name: string; args: unknown[] };
  type: string;
  /** `[name, args]` of a `@db.*` attribute, e.g. `['Timestamptz', ['3']]`. */
  nativeType?: [string, string[]] | null;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
}

/** A model of the DMMF. */
export interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}

/** An enum of the DMMF. */
export interface DmmfEnum {
  name: string;
  dbName?: string | null;
  values: { name: string; dbName: string | null }[];
}

/** An index, unique constraint or primary key of the DMMF. */
export interface DmmfIndex {
  model: string;
  type: 'id' | 'unique' | 'normal' | 'fulltext';
  dbName?: string | null;
  fields: { name: string; sortOrder?: 'asc' | 'desc' }[];
}

/** The data model part of Prisma's DMMF. */
export interface DmmfDatamodel {
  models: DmmfModel[];
  enums: DmmfEnum[];
  indexes: DmmfIndex[];
}

// The workspace compiles without the DOM library, which is where TypeScript declares WebAssembly.
interface WasmTable {
  grow(delta: number): number;
  get(index: number): unknown;
  set(index: number, value: unknown): void;
}
interface WasmApi {
  Module: { new (bytes: Uint8Array): object; imports(module: object): { module: string; name: string }[] };
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/**
 * Reads a Prisma schema into its DMMF data model without the schema engine or network: it runs
 * `prisma_schema_build_bg.wasm`, the schema compiler the installed `prisma` CLI itself uses for
 * `format`, `validate` and `generate`, through a minimal wasm-bindgen binding.
 * @throws Error with Prisma's validation message when the schema does not validate.
 */
export function readPrismaDatamodel(schemaPath: string): DmmfDatamodel {
  const wasmPath = path.join(path.dirname(require.resolve('prisma/package.json')), 'build', 'prisma_schema_build_bg.wasm');
  const module = new wasm.Module(readFileSync(wasmPath));
  let exports: Record<string, unknown> = {};
  const memory = (): Uint8Array => new Uint8Array((exports['memory'] as { buffer: ArrayBuffer }).buffer);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const text = (pointer: number, length: number): string => decoder.decode(memory().subarray(pointer >>> 0, (pointer >>> 0) + length));
  const externrefs = (): WasmTable => exports['__wbindgen_externrefs'] as WasmTable;
  // wasm-bindgen suffixes import names with a hash that changes between builds; match on the stem.
  const implementations: [RegExp, (...args: never[]) => unknown][] = [
    [/^__wbg_Error_/, (pointer: number, length: number) => new Error(text(pointer, length))],
    [/^__wbg_set_message_/, (target: Error, pointer: number, length: number) => void (target.message = text(pointer, length))],
    [/^__wbg___wbindgen_throw_/, (pointer: number, length: number) => {
      throw new Error(text(pointer, length));
    }],
    [/^__wbindgen_init_externref_table$/, () => {
      const table = externrefs();
      const offset = table.grow(4);
      table.set(0, undefined);
      table.set(offset, undefined);
      table.set(offset + 1, null);
      table.set(offset + 2, true);
      table.set(offset + 3, false);
    }],
  ];
  const imports: Record<string, Record<string, (...args: never[]) => unknown>> = {};
  for (const entry of wasm.Module.imports(module)) {
    const implementation = implementations.find(([pattern]) => pattern.test(entry.name))?.[1];
    if (!implementation) throw new Error(`prisma schema wasm needs unknown import ${entry.name}; update readPrismaDatamodel`);
    (imports[entry.module] ??= {})[entry.name] = implementation;
  }
  exports = new wasm.Instance(module, imports).exports;
  (exports['__wbindgen_start'] as () => void)();

  const schema = readFileSync(schemaPath, 'utf8');
  const input = new TextEncoder().encode(JSON.stringify({ prismaSchema: [[path.basename(schemaPath), schema]] }));
  const malloc = exports['__wbindgen_malloc'] as (size: number, align: number) => number;
  const free = exports['__wbindgen_free'] as (pointer: number, size: number, align: number) => void;
  const pointer = malloc(input.length, 1) >>> 0;
  memory().set(input, pointer);
  const [outPointer, outLength, errorRef, failed] = (exports['get_dmmf'] as (p: number, l: number) => [number, number, number, number])(
    pointer,
    input.length,
  );
  if (failed) {
    const error = externrefs().get(errorRef) as Error;
    throw new Error(`${schemaPath} does not validate: ${error.message}`);
  }
  const json = text(outPointer, outLength);
  free(outPointer, outLength, 1);
  return (JSON.parse(json) as { datamodel: DmmfDatamodel }).datamodel;
}
