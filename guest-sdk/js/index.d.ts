// Types of the JavaScript SDK's public API (`quarry-sdk`, `quarry-sdk/core.js`).

/** A column type; make one with the functions below. */
export interface DataType {
  readonly kind: string;
  readonly name: string;
}

export function int8(): DataType;
export function int16(): DataType;
export function int32(): DataType;
/** Values: BigInt, or numbers that are safe integers. */
export function int64(): DataType;
export function uint8(): DataType;
export function uint16(): DataType;
export function uint32(): DataType;
/** Values: BigInt, or numbers that are safe integers. */
export function uint64(): DataType;
export function float32(): DataType;
export function float64(): DataType;
export function boolean(): DataType;
export function utf8(): DataType;
export function largeUtf8(): DataType;
/** Values: Uint8Array (or text, sent as UTF-8). */
export function binary(): DataType;
export function largeBinary(): DataType;
export function fixedSizeBinary(width: number): DataType;
/** Values: Date, `YYYY-MM-DD` text, or days since 1970. */
export function date32(): DataType;
/** Values: Date, or integers (number or BigInt) in `unit` since the epoch. */
export function timestamp(unit?: 's' | 'ms' | 'us' | 'ns', tz?: string | null): DataType;
/** Values: arrays of `item` values. */
export function list(item: DataType): DataType;
/** CloudQuery's `uuid`: UUID text or 16 bytes. */
export function uuid(): DataType;
/** CloudQuery's `json`: anything `JSON.stringify` takes; null is SQL NULL. */
export function json(): DataType;
export function inet(): DataType;
export function mac(): DataType;

export type ErrorKind = 'invalid-spec' | 'unauthorized' | 'unavailable' | 'not-supported' | 'internal';

/** An error the host shows the user; its kind decides the exit code. */
export class QuarryError extends Error {
  constructor(kind: ErrorKind, message: string);
  readonly kind: ErrorKind;
  static invalidSpec(message: string): QuarryError;
  static unauthorized(message: string): QuarryError;
  static unavailable(message: string): QuarryError;
  static notSupported(message: string): QuarryError;
  static internal(message: string): QuarryError;
}

export interface ColumnOptions {
  primaryKey?: boolean;
  nullable?: boolean;
  unique?: boolean;
  incremental?: boolean;
  description?: string;
  /** For a `json` column: the JSON shape of its values (`cq:extension:type_schema`). */
  typeSchema?: string | null;
}

export class Column {
  constructor(name: string, type: DataType, options?: ColumnOptions);
  readonly name: string;
  readonly type: DataType;
}

export interface TableOptions {
  description?: string;
  title?: string;
  /** The parent table's name, for a child table (its rows come from `resolve`). */
  parent?: string | null;
  /** Rows are only ever added (never delete-staled). */
  incremental?: boolean;
}

export class Table {
  constructor(name: string, columns: Column[], options?: TableOptions);
  readonly name: string;
  readonly columns: Column[];
  readonly parent: string | null;
  readonly primaryKeys: string[];
}

/** A row: values in the table's column order, or an object by column name. */
export type Row = unknown[] | Record<string, unknown>;

/** Where a source's rows go during `sync`. */
export class SyncContext {
  /** For unit tests: a context over `sink` (a `MemorySink`); call `prepare(tables)` first. */
  constructor(plugin: Plugin, sink: MemorySink, deterministicCqId?: boolean);
  prepare(tables: Table[]): void;
  /** Sends rows; `_cq_id` and `_cq_parent_id` are filled in. Blocks while the host is busy. */
  insert(table: Table | string, rows: Row[]): void;
  /** Sends rows column by column (the fast way): column name to values. */
  insertColumns(table: Table | string, columns: Record<string, unknown[]>): void;
  /** The cursor `key` as the state backend holds it, null the first time. */
  stateGet(key: string): string | null;
  /** Moves the cursor `key`; it must describe only rows already inserted. */
  stateSet(key: string, value: string | number | bigint): void;
}

export interface Plugin {
  tables(): Table[];
  sync(tables: Table[], out: SyncContext): void;
  /** The rows of a child table for a batch of its parent's rows: `[parent index, row]` pairs. */
  resolve?(table: Table, parents: Record<string, unknown>[]): Iterable<[number, Row]>;
  init?(spec: Record<string, unknown>): void;
  testConnection?(): void;
  close?(): void;
}

export interface PluginDefinition extends Partial<Plugin> {
  name: string;
  version: string;
  description?: string;
  /** A JSON Schema (draft 2020-12) of the plugin's `spec:`; the host validates against it. */
  specSchema?: object | boolean;
  /** What to grant: `network` entries are grants (`host:port`, `*.domain`, `spec:FIELD`). */
  needs?: { network?: string[]; files?: string[]; env?: string[] };
  /** Makes the plugin for a spec; without it the definition is the plugin (with `init`). */
  create?(spec: Record<string, unknown>): Plugin;
}

/** Version-8 UUIDs derived from primary-key values, as every Quarry SDK derives them. */
export function deterministicIds(keys: Array<[string, DataType, unknown[]]>, rows: number): Uint8Array[];

export function selectTables(all: Table[], tables?: string[], skipTables?: string[], skipDependentTables?: boolean): Table[];
export function matchesGlob(pattern: string, name: string): boolean;
export function log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;

/** Collects what a sync sends, for unit tests: `messages` are `['migrate', schema]` / `['insert', bytes]`. */
export class MemorySink {
  constructor(state?: Record<string, string>);
  messages: Array<['migrate', unknown] | ['insert', Uint8Array]>;
  state: Record<string, string>;
}

/** Runs a sync of `plugin` in plain JavaScript (Node), for unit tests. */
export function runSync(plugin: Plugin, options?: { tables?: string[]; skipTables?: string[]; skipDependentTables?: boolean; state?: Record<string, string> }): MemorySink;

/** The component's exports for a plugin: `export const { plugin, source } = exportPlugin(definition)`. */
export function exportPlugin(definition: PluginDefinition): { plugin: unknown; source: unknown };
