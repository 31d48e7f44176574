// Write Quarry source plugins in JavaScript. A plugin is an object (or class instance) with
// `name`, `version`, `description`, `specSchema`, `needs`, and the methods `init(spec)`,
// `tables()`, `sync(tables, out)`, and for child tables `resolve(table, parents)`; the app module
// that componentize-js builds exports `exportPlugin(plugin)`'s `plugin` and `source`:
//
//   import * as q from 'quarry-sdk';
//   const hello = {
//     name: 'hello', version: '0.1.0', description: 'Says hello',
//     tables: () => [new q.Table('greetings', [new q.Column('text', q.utf8())])],
//     sync(tables, out) { out.insert(tables[0], [['hello']]); },
//   };
//   export const { plugin, source } = q.exportPlugin(hello);
//
// This module (`quarry-sdk/core.js`) runs in Node too, so a plugin's logic is unit-tested there
// with `runSync`; `quarry-sdk` adds `exportPlugin`, and `quarry-sdk/http.js` outbound HTTP, which
// need the component's imports.

import * as arrow from './arrow.js';
import { sha256 } from './sha256.js';

export * from './arrow.js';

/** The largest Arrow stream one `sink.emit` carries (the host copies at most 128 MiB per call). */
export const limits = { maxEmitBytes: 64 << 20 };
const CQ_ID = '_cq_id';
const CQ_PARENT_ID = '_cq_parent_id';

/** An error the host shows the user; its kind decides the exit code (see the contract). */
export class QuarryError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }

  static invalidSpec(message) { return new QuarryError('invalid-spec', message); }
  static unauthorized(message) { return new QuarryError('unauthorized', message); }
  static unavailable(message) { return new QuarryError('unavailable', message); }
  static notSupported(message) { return new QuarryError('not-supported', message); }
  static internal(message) { return new QuarryError('internal', message); }
}

/** A column: its name, type (`q.int64()`, ...) and CloudQuery's column options. */
export class Column {
  constructor(name, type, { primaryKey = false, nullable = true, unique = false, incremental = false,
    description = '', typeSchema = null } = {}) {
    if (!(type && type.arrow)) throw new TypeError(`column \`${name}\`: the type is ${type}; use q.int64(), q.utf8(), ...`);
    Object.assign(this, { name, type, primaryKey, unique, incremental, description, typeSchema });
    this.nullable = nullable && !primaryKey;
  }

  field() {
    const meta = {};
    if (this.primaryKey) meta['cq:extension:primary_key'] = 'true';
    if (this.unique) meta['cq:extension:unique'] = 'true';
    if (this.incremental) meta['cq:extension:incremental'] = 'true';
    if (this.description) meta['quarry:description'] = this.description;
    if (this.typeSchema != null) meta['cq:extension:type_schema'] = this.typeSchema;
    return arrow.field(this.name, this.type, this.nullable, meta);
  }
}

/** A table: its name, columns, and (a child table) its parent's name. */
export class Table {
  constructor(name, columns, { description = '', title = '', parent = null, incremental = false } = {}) {
    Object.assign(this, { name, columns: [...columns], description, title, parent, incremental });
    const seen = new Set();
    for (const c of this.columns) {
      if (seen.has(c.name)) throw new Error(`table \`${name}\` declares column \`${c.name}\` twice`);
      seen.add(c.name);
    }
  }

  get primaryKeys() {
    return this.columns.filter((c) => c.primaryKey).map((c) => c.name);
  }

  /** The table as sent: `_cq_id` and `_cq_parent_id` first (replacing any declared). */
  withIdColumns() {
    const own = this.columns.filter((c) => c.name !== CQ_ID && c.name !== CQ_PARENT_ID);
    const ids = [
      new Column(CQ_ID, arrow.uuid(), { nullable: false, unique: true, description: 'Unique id of the row',
        primaryKey: !own.some((c) => c.primaryKey) }),
      new Column(CQ_PARENT_ID, arrow.uuid(), { description: 'The `_cq_id` of the parent row, for a child table' }),
    ];
    return new Table(this.name, [...ids, ...own], this);
  }

  schema() {
    const meta = { 'cq:table_name': this.name };
    if (this.description) meta['cq:table_description'] = this.description;
    if (this.title) meta['cq:table_title'] = this.title;
    if (this.parent) meta['cq:table_depends_on'] = this.parent;
    if (this.incremental) meta['cq:extension:is_incremental'] = 'true';
    return arrow.schema(this.columns.map((c) => c.field()), meta);
  }
}

/** A glob over table names: `*` any run of characters, `?` one character. */
export function matchesGlob(pattern, name) {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(name);
}

/**
 * The tables the patterns select, in `all`'s order, as the host and the other SDKs select them:
 * a pattern that matches nothing is an error listing the tables, and child tables follow their
 * parents unless `skipDependentTables`.
 */
export function selectTables(all, tables = ['*'], skipTables = [], skipDependentTables = false) {
  const names = all.map((t) => t.name).join(', ');
  for (const pattern of [...tables, ...skipTables]) {
    if (!all.some((t) => matchesGlob(pattern, t.name))) {
      throw QuarryError.invalidSpec(`table pattern \`${pattern}\` matches no table; the tables are: ${names}`);
    }
  }
  const skipped = (t) => skipTables.some((p) => matchesGlob(p, t.name));
  const chosen = new Set(all.filter((t) => tables.some((p) => matchesGlob(p, t.name)) && !skipped(t)).map((t) => t.name));
  if (!skipDependentTables) {
    for (let grown = true; grown;) {
      grown = false;
      for (const t of all) {
        if (t.parent && chosen.has(t.parent) && !chosen.has(t.name) && !skipped(t)) {
          chosen.add(t.name);
          grown = true;
        }
      }
    }
  }
  for (const t of all) {
    if (chosen.has(t.name) && t.parent && !chosen.has(t.parent)) {
      throw QuarryError.invalidSpec(`table \`${t.name}\` is a child of \`${t.parent}\`, which is not selected; select \`${t.parent}\` too, or add \`${t.name}\` to \`skip_tables\``);
    }
  }
  return all.filter((t) => chosen.has(t.name));
}

/** `rows` random version-4 UUIDs, each 16 bytes. */
export function randomIds(rows) {
  const data = new Uint8Array(16 * rows);
  for (let at = 0; at < data.length; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
  const out = new Array(rows);
  for (let i = 0; i < rows; i++) {
    const id = data.subarray(16 * i, 16 * i + 16);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    out[i] = id;
  }
  return out;
}

const utf8 = new TextEncoder();

function byteOrder(a, b) {
  const [x, y] = [utf8.encode(a), utf8.encode(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function u32(n) {
  return new Uint8Array(new Uint32Array([n]).buffer);
}

/**
 * Version-8 UUIDs from SHA-256 over each key's name and value, keys in name order: the ids the
 * Rust and Python SDKs derive for the same keys. `keys` are `[name, type, values]`.
 */
export function deterministicIds(keys, rows) {
  const sorted = [...keys].sort((a, b) => byteOrder(a[0], b[0]));
  const names = sorted.map(([name]) => utf8.encode(name));
  const out = new Array(rows);
  for (let row = 0; row < rows; row++) {
    const parts = [];
    for (let k = 0; k < sorted.length; k++) {
      const [name, type, values] = sorted[k];
      const value = values[row];
      let encoded;
      if (value == null) {
        encoded = new Uint8Array([0xff]);
      } else {
        let bytes;
        try {
          bytes = arrow.keyBytes(type, value);
        } catch (e) {
          const error = new TypeError(`column \`${name}\` (${type}): ${e.message.startsWith('row ') ? '' : `row ${row}: `}${e.message}`);
          error.unsupportedKey = e.unsupportedKey;
          throw error;
        }
        encoded = new Uint8Array(bytes.length + 1);
        encoded.set(bytes, 1);
      }
      parts.push(u32(names[k].length), names[k], u32(encoded.length), encoded);
    }
    let total = 0;
    for (const p of parts) total += p.length;
    const message = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      message.set(p, at);
      at += p.length;
    }
    const id = sha256(message).slice(0, 16);
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    out[row] = id;
  }
  return out;
}

class Prepared {
  constructor(table) {
    this.table = table;
    this.full = table.withIdColumns();
    this.schema = this.full.schema();
    this.types = this.full.columns.map((c) => c.type);
    this.keys = table.columns.map((c, i) => [c, i]).filter(([c]) => c.primaryKey);
  }
}

/** Where a source's rows go during `sync`. */
export class SyncContext {
  constructor(plugin, sink, deterministicCqId = false) {
    this.deterministicCqId = deterministicCqId;
    this.plugin = plugin;
    this.sink = sink;
    this.tables = new Map();
    this.children = new Map();
  }

  prepare(tables) {
    for (const table of tables) {
      if (table.parent && typeof this.plugin.resolve !== 'function') {
        throw QuarryError.internal(`table \`${table.name}\` is a child of \`${table.parent}\`, but the plugin has no \`resolve\` that yields its rows`);
      }
      const prepared = new Prepared(table);
      this.tables.set(table.name, prepared);
      this.sink.migrate(prepared.schema);
      if (table.parent) {
        if (!this.children.has(table.parent)) this.children.set(table.parent, []);
        this.children.get(table.parent).push(table);
      }
    }
  }

  /**
   * Sends rows of `table`: arrays in the table's column order, or objects by column name (a
   * missing key is null). `_cq_id` and `_cq_parent_id` are filled in. Blocks while the host's
   * pipeline is full; an error here means the sync was cancelled: let it propagate.
   */
  insert(table, rows) {
    const prepared = this.prepared(table);
    if (!Array.isArray(rows)) rows = Array.from(rows);
    if (rows.length) this.send(prepared, columnsOf(prepared.table, rows), rows.length, null);
  }

  /** Sends rows column by column: an object of column name to values (a missing column is null). */
  insertColumns(table, columns) {
    const prepared = this.prepared(table);
    const names = prepared.table.columns.map((c) => c.name);
    const unknown = Object.keys(columns).filter((k) => !names.includes(k));
    if (unknown.length) throw unknownColumns(prepared.table, unknown);
    const rows = Object.values(columns)[0]?.length ?? 0;
    const list = names.map((n) => {
      const values = columns[n] ?? new Array(rows).fill(null);
      if (values.length !== rows) {
        throw QuarryError.internal(`table \`${prepared.table.name}\`: column \`${n}\` has ${values.length} values, not ${rows}`);
      }
      return values;
    });
    if (rows) this.send(prepared, list, rows, null);
  }

  /** The cursor `key` as the state backend holds it (null the first time). */
  stateGet(key) {
    return this.sink.stateGet(key);
  }

  /** Moves the cursor `key`; it must describe only rows already inserted. */
  stateSet(key, value) {
    this.sink.stateSet(key, String(value));
  }

  prepared(table) {
    const name = typeof table === 'string' ? table : table.name;
    const prepared = this.tables.get(name);
    if (!prepared) {
      throw QuarryError.internal(`rows for table \`${name}\`, which is not one of the tables being synced (${[...this.tables.keys()].join(', ') || 'none'})`);
    }
    return prepared;
  }

  send(prepared, columns, rows, parentIds) {
    const ids = this.ids(prepared, columns, rows);
    const full = [ids, parentIds ?? new Array(rows).fill(null), ...columns];
    this.emit(prepared, full, rows);
    const children = this.children.get(prepared.table.name);
    if (!children) return;
    const names = prepared.full.columns.map((c) => c.name);
    const parents = Array.from({ length: rows }, (_, r) => Object.fromEntries(names.map((n, i) => [n, full[i][r]])));
    for (const child of children) this.resolve(child, parents, ids);
  }

  ids(prepared, columns, rows) {
    if (!(this.deterministicCqId && prepared.keys.length)) return randomIds(rows);
    try {
      return deterministicIds(prepared.keys.map(([c, i]) => [c.name, c.type, columns[i]]), rows);
    } catch (e) {
      // A key type no id derives from is the user's setting to change; a bad value is the plugin's.
      if (e.unsupportedKey) throw QuarryError.invalidSpec(`deterministic_cq_id: table \`${prepared.table.name}\`: ${e.message}; turn deterministic_cq_id off for this source`);
      throw QuarryError.internal(`table \`${prepared.table.name}\`: ${e.message}`);
    }
  }

  emit(prepared, columns, rows) {
    let data;
    try {
      data = arrow.encodeBatch(prepared.schema, prepared.types, columns, rows);
    } catch (e) {
      throw QuarryError.internal(`table \`${prepared.table.name}\`: ${e.message}`);
    }
    if (data.length > limits.maxEmitBytes && rows > 1) {
      const half = rows >> 1;
      this.emit(prepared, columns.map((c) => c.slice(0, half)), half);
      this.emit(prepared, columns.map((c) => c.slice(half)), rows - half);
      return;
    }
    this.sink.insert(data);
  }

  resolve(child, parents, parentIds) {
    const rows = [];
    const ids = [];
    try {
      for (const [index, row] of this.plugin.resolve(child, parents)) {
        if (!(Number.isInteger(index) && index >= 0 && index < parents.length)) {
          throw QuarryError.internal(`a child row names parent row ${JSON.stringify(index)}, but the parent batch has rows 0 to ${parents.length - 1}`);
        }
        ids.push(parentIds[index]);
        rows.push(row);
      }
    } catch (e) {
      throw new QuarryError(e instanceof QuarryError ? e.kind : 'internal', `resolving table \`${child.name}\`: ${e.message}`);
    }
    if (rows.length) this.send(this.tables.get(child.name), columnsOf(child, rows), rows.length, ids);
  }
}

function unknownColumns(table, unknown) {
  return QuarryError.internal(`table \`${table.name}\` has no column ${unknown.sort().map((u) => `\`${u}\``).join(', ')}; its columns are ${table.columns.map((c) => c.name).join(', ')}`);
}

/** Rows (arrays in column order, or objects by column name) as one array per column. */
function columnsOf(table, rows) {
  const names = table.columns.map((c) => c.name);
  const columns = names.map(() => new Array(rows.length));
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    if (Array.isArray(row)) {
      if (row.length !== names.length) {
        throw QuarryError.internal(`table \`${table.name}\` has ${names.length} columns, but a row has ${row.length} values`);
      }
      for (let i = 0; i < names.length; i++) columns[i][r] = row[i];
    } else {
      const unknown = Object.keys(row).filter((k) => !names.includes(k));
      if (unknown.length) throw unknownColumns(table, unknown);
      for (let i = 0; i < names.length; i++) columns[i][r] = row[names[i]] ?? null;
    }
  }
  return columns;
}

/** A sync as the host runs it: the selected tables' schemas, then `plugin.sync` over the top-level ones. */
export function syncInto(plugin, sink, { tables = ['*'], skipTables = [], skipDependentTables = false, deterministicCqId = false } = {}) {
  const selected = selectTables(plugin.tables(), tables, skipTables, skipDependentTables);
  const out = new SyncContext(plugin, sink, deterministicCqId);
  out.prepare(selected);
  plugin.sync(selected.filter((t) => !t.parent), out);
}

/** Collects what a sync sends, for unit tests. */
export class MemorySink {
  constructor(state = {}) {
    this.messages = [];
    this.state = { ...state };
  }

  migrate(schema) { this.messages.push(['migrate', schema]); }
  insert(data) { this.messages.push(['insert', data]); }
  stateGet(key) { return this.state[key] ?? null; }
  stateSet(key, value) { this.state[key] = value; }
}

/** Runs a sync of `plugin` (already initialised) in plain JavaScript; returns a `MemorySink`. */
export function runSync(plugin, { state, ...options } = {}) {
  const sink = new MemorySink(state);
  syncInto(plugin, sink, options);
  return sink;
}

let logger = (level, message, fields) => {
  const extra = Object.entries(fields).map(([k, v]) => ` ${k}=${v}`).join('');
  console.error(`${level.toUpperCase()} ${message}${extra}`);
};

/** Where `log` goes: the host's log inside a component (set by `exportPlugin`), else stderr. */
export function setLogger(f) {
  logger = f;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** A structured log record, shown by the host with the plugin's name. */
export function log(level, message, fields = {}) {
  if (!LEVELS.includes(level)) throw new TypeError(`log level must be one of ${LEVELS.join(', ')}, not ${level}`);
  logger(level, String(message), fields);
}
