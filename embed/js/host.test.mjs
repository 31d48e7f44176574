// The Node host's own test: `quarry/test`'s component, the same file the `quarry` CLI runs,
// transpiled by jco and synced here into memory; the rows are the ones the Rust source makes.
// Run by the e2e test `embed::the_test_component_runs_in_node` with QUARRY_TEST_WASM set.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { load } from './host.mjs';

const wasm = process.env.QUARRY_TEST_WASM;
assert.ok(wasm, 'QUARRY_TEST_WASM names quarry_plugin_test.wasm');

const plugin = await load(wasm, import.meta.dirname);

test('the component says what it is', () => {
  const info = plugin.info();
  assert.equal(info.name, 'test');
  assert.deepEqual(info.kinds, ['source', 'destination']);
});

test('test_rows arrive with the values the Rust source computes', () => {
  plugin.init({ num_rows: 1000, batch_size: 300 });
  const { rows, schemas } = plugin.sync(['test_rows']);
  assert.deepEqual([...schemas.keys()], ['test_rows']);
  const table = rows.get('test_rows');
  assert.equal(table.numRows, 1000);
  assert.equal(table.batches.length, 4, 'batches of 300, 300, 300 and 100 rows');
  const ids = table.getChild('id').toArray();
  assert.equal(ids.reduce((a, b) => a + b, 0n), 499500n);
  const row = table.get(7).toJSON();
  assert.equal(row.name, 'name_00000000007');
  assert.equal(row.value, 1);
  assert.equal(row.flag, false);
  assert.equal(table.get(9).toJSON().flag, true);
  const flags = table.getChild('flag').toArray().filter(Boolean).length;
  assert.equal(flags, 334, 'id % 3 == 0 for 0..999');
  assert.equal(table.schema.fields.find((f) => f.name === 'id').metadata.get('cq:extension:primary_key'), 'true');
});

test('an incremental table reads and sets its cursor through the state import', () => {
  plugin.init({ num_rows: 500, batch_size: 200 });
  const cursors = new Map();
  const first = plugin.sync(['test_increments'], cursors);
  const ids = (r) => r.rows.get('test_increments').getChild('id').toArray();
  assert.deepEqual([Number(ids(first)[0]), Number(ids(first).at(-1))], [0, 499]);
  assert.equal(cursors.get('test_increments'), '500');
  const second = plugin.sync(['test_increments'], cursors);
  assert.deepEqual([Number(ids(second)[0]), Number(ids(second).at(-1))], [500, 999]);
  assert.equal(cursors.get('test_increments'), '1000');
});

test('a bad spec is the plugin\'s invalid-spec error', () => {
  assert.throws(() => plugin.init({ num_rows: 'many' }), /invalid-spec/);
});

test.after(async () => {
  plugin.close();
  await plugin.remove();
});
