// The example plugin in Node: its `test_rows` are the `test` plugin's (the values that plugin's
// own unit test checks for row 50,000), and pages are followed to the last.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as q from 'quarry-sdk/core.js';

import { definition, testRowsColumns } from './example.js';

test("row values follow the test plugin's formulas", () => {
  const c = testRowsColumns(49999, 50001);
  assert.equal(c.id[1], 50000);
  assert.equal(c.name[1], 'name_00000050000');
  assert.equal(c.value[1], 50000 / 7);
  assert.deepEqual(c.flag, [false, false]);
  assert.equal(c.created_at[1], 1704067200000000 + 50000 * 1000000);
  assert.equal(c.payload[1], '{"ref":"00000050000","name":"name_00000050000","score":"000","group":"g45","active":0,"note":"lorem"}');
  assert.equal(c.payload[1].length, 101);
  assert.deepEqual(c.tags[0], ['a4', 'b49', 'c499']);
  assert.equal(testRowsColumns(3, 4).flag[0], true);
});

test('pages are followed until `next` is null', () => {
  const plugin = definition.create({ base_url: 'http://api.test/v1/' });
  const pages = {
    'http://api.test/v1/items/1.json': { items: [{ id: 1, title: 'one' }], next: '/v1/items/2.json' },
    'http://api.test/v1/items/2.json': { items: [{ id: 2, title: 'two', tags: ['x'] }], next: null },
  };
  const requested = [];
  const sink = new q.MemorySink();
  const out = new q.SyncContext(plugin, sink);
  const table = plugin.tables().find((t) => t.name === 'js_items');
  out.prepare([table]);
  plugin.syncItems(table, out, (url) => { requested.push(url); return pages[url]; });
  assert.deepEqual(requested, Object.keys(pages));
  assert.equal(sink.messages.filter(([kind]) => kind === 'insert').length, 2);
});
