// Runs a Quarry component in Node: `jco transpile` turns the same .wasm the `quarry` CLI runs
// into an ES module, this file supplies the contract's imports (quarry-host.js) and drives the
// plugin's exports as the CLI's engine does, collecting what a source sends as Arrow tables
// (apache-arrow) in memory: a JavaScript in-memory destination.

import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { transpile, writeFiles } from '@bytecodealliance/jco-transpile';
import { tableFromIPC } from 'apache-arrow';

import * as quarry from './quarry-host.js';

/**
 * Transpiles the component at `wasm` into a directory under `workDir` (which must see the
 * preview2-shim package in a node_modules above it) and instantiates it.
 */
export async function load(wasm, workDir) {
  const out = await mkdtemp(path.join(workDir, 'transpiled-'));
  const { files } = await transpile(wasm, {
    outDir: out,
    name: 'plugin',
    map: { 'quarry:plugin/*': `${pathToFileURL(path.resolve(import.meta.dirname, 'quarry-host.js'))}#*` },
  });
  await writeFiles(files);
  const component = await import(pathToFileURL(path.join(out, 'plugin.js')).href);
  return new Plugin(component, out);
}

/** A result's error payload, as the component returned it (`{ kind, message }`). */
function pluginError(e) {
  const payload = e?.payload ?? e;
  if (payload && typeof payload.kind === 'string') {
    return new Error(`${payload.kind}: ${payload.message}`);
  }
  return e;
}

export class Plugin {
  constructor(component, dir) {
    this.component = component;
    this.dir = dir;
  }

  info() {
    return this.component.plugin.info();
  }

  init(spec) {
    try {
      this.component.plugin.init(JSON.stringify(spec));
    } catch (e) {
      throw pluginError(e);
    }
  }

  /**
   * Runs the source's sync of `tables` with the given cursors; returns the rows of each table
   * (an apache-arrow Table per table name), the cursors it set, and its log records.
   */
  sync(tables, cursors = new Map()) {
    const schemas = new Map();
    const batches = new Map();
    const logs = [];
    const options = {
      tables: { tables, skipTables: [], skipDependentTables: false },
      deterministicCqId: false,
    };
    quarry.begin({
      cursors,
      log: (record) => logs.push(record),
      emit: (message) => {
        if (message.tag === 'migrate-table') {
          const schema = tableFromIPC(message.val).schema;
          const name = schema.metadata.get('cq:table_name');
          schemas.set(name, schema);
          batches.set(name, batches.get(name) ?? []);
        } else if (message.tag === 'insert') {
          const table = tableFromIPC(message.val);
          const name = table.schema.metadata.get('cq:table_name');
          if (!schemas.has(name)) {
            throw { kind: 'internal', message: `insert into ${name} before its migrate-table` };
          }
          batches.get(name).push(table);
        }
      },
    });
    try {
      this.component.source.sync(options);
    } catch (e) {
      throw pluginError(e);
    } finally {
      quarry.end();
    }
    const rows = new Map();
    for (const [name, tables] of batches) {
      rows.set(name, tables.length ? tables.reduce((a, b) => a.concat(b)) : null);
    }
    return { rows, schemas, cursors, logs };
  }

  close() {
    this.component.plugin.close();
  }

  async remove() {
    await rm(this.dir, { recursive: true, force: true });
  }
}
