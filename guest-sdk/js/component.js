// The contract's exports, bound to a plugin object. componentize-js calls them; the contract's
// imports come in as modules (`quarry:plugin/...`) that only exist inside the component.

import { log as hostLog } from 'quarry:plugin/host@0.1.0';
import { emit } from 'quarry:plugin/sink@0.1.0';
import { get as stateGet, set as stateSet } from 'quarry:plugin/state@0.1.0';

import * as arrow from './arrow.js';
import { QuarryError, selectTables, setLogger, syncInto } from './core.js';

const KINDS = new Set(['invalid-spec', 'unauthorized', 'unavailable', 'not-supported', 'internal']);

/** The contract's `error` for what plugin code threw. */
function contractError(e) {
  if (e && e.payload && KINDS.has(e.payload.kind)) return e.payload; // an import's error, as it came
  if (e instanceof QuarryError) return { kind: KINDS.has(e.kind) ? e.kind : 'internal', message: e.message };
  const where = e && e.stack ? ` (at ${String(e.stack).split('\n').find((l) => l.includes(':')) ?? '?'})` : '';
  const name = e && e.name ? e.name : 'Error';
  return { kind: 'internal', message: `${name}: ${e && e.message !== undefined ? e.message : String(e)}${where}` };
}

function guarded(f) {
  try {
    return f();
  } catch (e) {
    throw contractError(e);
  }
}

const hostSink = {
  migrate(schema) {
    emit({ tag: 'migrate-table', val: arrow.encodeSchema(schema) });
  },
  insert(data) {
    emit({ tag: 'insert', val: data });
  },
  stateGet(key) {
    return stateGet(key) ?? null;
  },
  stateSet(key, value) {
    stateSet(key, value);
  },
};

/**
 * The component's exports for `definition`: `{ plugin, source }`. `definition` has `name`,
 * `version`, `description`, optionally `specSchema` (a JSON Schema object) and `needs`
 * (`{ network, files, env }`), and either is the plugin (with `init(spec)`, `tables()`,
 * `sync(tables, out)`) or has `create(spec)` returning one.
 */
export function exportPlugin(definition) {
  setLogger((level, message, fields) => hostLog(level, message, Object.entries(fields).map(([k, v]) => [String(k), String(v)])));
  let instance = null;
  const current = () => {
    if (!instance) throw QuarryError.internal('the host called the plugin before `init`');
    return instance;
  };
  const plugin = {
    info() {
      const needs = definition.needs ?? {};
      return {
        name: definition.name,
        version: definition.version,
        description: definition.description ?? '',
        kinds: ['source'],
        needs: { network: [...(needs.network ?? [])], files: [...(needs.files ?? [])], env: [...(needs.env ?? [])] },
        writeModes: [],
        batchRows: 0n,
        batchBytes: 0n,
      };
    },
    specSchema() {
      return JSON.stringify(definition.specSchema ?? true);
    },
    init(text) {
      guarded(() => {
        let spec;
        try {
          spec = text.trim() ? JSON.parse(text) : {};
        } catch (e) {
          throw QuarryError.invalidSpec(`spec: ${e.message}`);
        }
        instance = definition.create ? definition.create(spec) : definition;
        if (!definition.create && instance.init) instance.init(spec);
      });
    },
    testConnection() {
      guarded(() => current().testConnection?.());
    },
    close() {
      try {
        guarded(() => instance?.close?.());
      } finally {
        instance = null;
      }
    },
  };
  const source = {
    tables(options) {
      return guarded(() => selectTables(current().tables(), options.tables, options.skipTables, options.skipDependentTables)
        .map((t) => arrow.encodeSchema(t.withIdColumns().schema())));
    },
    sync(options) {
      guarded(() => syncInto(current(), hostSink, {
        tables: options.tables.tables,
        skipTables: options.tables.skipTables,
        skipDependentTables: options.tables.skipDependentTables,
        deterministicCqId: options.deterministicCqId,
      }));
    },
  };
  return { plugin, source };
}
