// The JavaScript SDK in Node: its Arrow streams read back with apache-arrow, table selection,
// ids and relations. The e2e suite runs it (`javascript::the_javascript_sdk_passes_its_unit_tests`)
// from a copy beside the pinned npm packages of scripts/tools.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { tableFromIPC } from 'apache-arrow';

import * as q from 'quarry-sdk/core.js';

function read(stream) {
  return tableFromIPC(stream);
}

function roundTrip(type, values, nullable = true) {
  const schema = q.schema([q.field('c', type, nullable)], { 'cq:table_name': 't' });
  const table = read(q.encodeBatch(schema, [type], [values], values.length));
  return [table.getChild('c').toArray ? [...table.getChild('c')] : null, table];
}

test('every type reads back with its values and nulls', () => {
  const cases = [
    [q.int8(), [-128, null, 127]],
    [q.int16(), [-32768, 0, 32767]],
    [q.int32(), [-(2 ** 31), null, 2 ** 31 - 1]],
    [q.uint8(), [0, null, 255]],
    [q.uint32(), [0, 2 ** 32 - 1, null]],
    [q.float64(), [1e300, null, -2.5]],
    [q.boolean(), [true, false, null, true, true, false, false, true, true]],
    [q.utf8(), ['ascii', null, 'héllo ☃ 𝄞', '']],
    [q.largeUtf8(), ['a', null, 'é']],
  ];
  for (const [type, values] of cases) {
    const [got] = roundTrip(type, values);
    assert.deepEqual(got, values, String(type));
  }
  const [big] = roundTrip(q.int64(), [-(2n ** 63n), null, 2n ** 63n - 1n, 5]);
  assert.deepEqual(big, [-(2n ** 63n), null, 2n ** 63n - 1n, 5n]);
  const [ubig] = roundTrip(q.uint64(), [2n ** 64n - 1n, null]);
  assert.deepEqual(ubig, [2n ** 64n - 1n, null]);
  const [bytes] = roundTrip(q.binary(), [new Uint8Array([0, 255]), null, new Uint8Array()]);
  assert.deepEqual(bytes.map((b) => (b ? [...b] : b)), [[0, 255], null, []]);
  const [lists, table] = roundTrip(q.list(q.utf8()), [['a', 'b'], null, [], ['é', null]]);
  assert.deepEqual(lists.map((l) => (l ? [...l] : l)), [['a', 'b'], null, [], ['é', null]]);
  assert.equal(String(table.schema.fields[0].type), 'List<Utf8>');
});

test('timestamps and dates keep their exact values', () => {
  const schema = q.schema([q.field('at', q.timestamp('us', 'UTC'), true), q.field('day', q.date32(), true)]);
  const table = read(q.encodeBatch(schema, [q.timestamp('us', 'UTC'), q.date32()], [
    [new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), 1704067200000001n, null],
    ['2024-02-29', new Date(Date.UTC(1969, 11, 31)), null],
  ], 3));
  const at = table.getChild('at').data[0].values;
  assert.deepEqual([...at.slice(0, 2)], [1704164645678000n, 1704067200000001n]);
  assert.equal(table.getChild('at').get(2), null);
  const day = table.getChild('day').data[0].values;
  assert.deepEqual([...day.slice(0, 2)], [19782, -1]);
  assert.equal(table.schema.fields[0].type.timezone, 'UTC');
});

test('extension types carry CloudQuery metadata', () => {
  const types = [q.uuid(), q.json()];
  const schema = q.schema([q.field('u', types[0], true), q.field('j', types[1], true)]);
  const table = read(q.encodeBatch(schema, types, [
    ['12345678-1234-5678-9abc-def012345678', null],
    [{ a: [1, null] }, null],
  ], 2));
  assert.deepEqual([...table.getChild('u').get(0)], [...q.uuidBytes('12345678123456789abcdef012345678')]);
  assert.equal(new TextDecoder().decode(table.getChild('j').get(0)), '{"a":[1,null]}');
  assert.equal(table.getChild('j').get(1), null);
  for (const [name, ext] of [['u', 'uuid'], ['j', 'json']]) {
    const meta = table.schema.fields.find((f) => f.name === name).metadata;
    assert.equal(meta.get('ARROW:extension:name'), ext);
    assert.equal(meta.get('ARROW:extension:metadata'), `${ext}-serialized`);
  }
});

test('bad values name the column and row', () => {
  const schema = q.schema([q.field('n', q.int8(), true), q.field('k', q.int64(), false)]);
  const types = [q.int8(), q.int64()];
  assert.throws(() => q.encodeBatch(schema, types, [[1000], [1n]], 1), /column `n` \(int8\): row 0: 1000 is out of range/);
  assert.throws(() => q.encodeBatch(schema, types, [[1.5], [1n]], 1), /column `n` \(int8\): row 0: 1.5 is not an integer/);
  assert.throws(() => q.encodeBatch(schema, types, [[1, 2], [1n, null]], 2), /column `k` \(int64\): row 1 is null/);
  assert.throws(() => q.encodeBatch(schema, types, [[1], [2 ** 60]], 1), /not an exact integer; pass a BigInt/);
});

const family = {
  tables: () => [
    new q.Table('parents', [new q.Column('id', q.int64(), { primaryKey: true }), new q.Column('name', q.utf8())]),
    new q.Table('children', [new q.Column('parent', q.int64(), { primaryKey: true }), new q.Column('n', q.int64(), { primaryKey: true })], { parent: 'parents' }),
    new q.Table('loose', [new q.Column('x', q.int64())]),
  ],
  sync(tables, out) {
    for (const table of tables) {
      if (table.name === 'parents') out.insert(table, [0, 1, 2].map((i) => ({ id: i, name: `p${i}` })));
      else out.insertColumns(table, { x: [1, 2] });
    }
  },
  *resolve(table, parents) {
    for (const [index, parent] of parents.entries()) {
      yield [index, [parent.id, 0]];
      yield [index, { parent: parent.id, n: 1 }];
    }
  },
};

function rowsOf(sink, name) {
  return sink.messages.filter(([kind]) => kind === 'insert').map(([, m]) => read(m))
    .filter((t) => t.schema.metadata.get('cq:table_name') === name)
    .flatMap((t) => t.toArray().map((r) => r.toJSON()));
}

test('child rows point at their parents ids', () => {
  const sink = q.runSync(family);
  const parents = rowsOf(sink, 'parents');
  const children = rowsOf(sink, 'children');
  assert.equal(children.length, 6);
  const hex = (b) => Buffer.from(b).toString('hex');
  const byId = new Map(parents.map((p) => [p.id, hex(p._cq_id)]));
  for (const c of children) assert.equal(hex(c._cq_parent_id), byId.get(c.parent));
  assert.ok(parents.every((p) => p._cq_parent_id === null));
  for (const row of [...parents, ...children]) assert.equal(row._cq_id[6] >> 4, 4);
  assert.equal(new Set(children.map((c) => hex(c._cq_id))).size, 6);
});

test('selection follows patterns and parents', () => {
  const all = family.tables();
  const names = (s) => s.map((t) => t.name);
  assert.deepEqual(names(q.selectTables(all, ['parents'])), ['parents', 'children']);
  assert.deepEqual(names(q.selectTables(all, ['parents'], [], true)), ['parents']);
  assert.deepEqual(names(q.selectTables(all, ['*'], ['child*'])), ['parents', 'loose']);
  assert.deepEqual(names(q.selectTables(all, ['?oose'])), ['loose']);
  assert.throws(() => q.selectTables(all, ['nope']), /`nope` matches no table; the tables are: parents, children, loose/);
  assert.throws(() => q.selectTables(all, ['children']), /`children` is a child of `parents`/);
});

test('rows for unknown columns or tables are refused', () => {
  assert.throws(() => q.runSync({ ...family, sync: (t, out) => out.insert(t[0], [{ id: 1, nmae: 'typo' }]) }), /table `parents` has no column `nmae`/);
  assert.throws(() => q.runSync({ ...family, sync: (t, out) => out.insert(t[0], [[1]]) }), /table `parents` has 2 columns, but a row has 1/);
  assert.throws(() => q.runSync({ ...family, sync: (t, out) => out.insert('loose', [[1]]) }, { tables: ['parents'] }), /table `loose`, which is not one of the tables/);
});

test('deterministic ids follow the primary key and match the Rust and Python SDKs', () => {
  const ids = (sink) => rowsOf(sink, 'parents').map((r) => Buffer.from(r._cq_id).toString('hex'));
  const first = ids(q.runSync(family, { deterministicCqId: true }));
  assert.deepEqual(ids(q.runSync(family, { deterministicCqId: true })), first);
  assert.ok(first.every((id) => id[12] === '8'));
  // The id `quarry_sdk::cq_id::deterministic_ids` derives for `id` = 1 (int64): guest-sdk/src/cq_id.rs,
  // `an_id_from_one_int64_key_is_the_same_in_every_sdk`, and the Python SDK's test.
  assert.equal(first[1], '81bac35508aa85edbc5c4f9b2e3736cd');
  const listKey = { ...family, tables: () => [new q.Table('parents', [new q.Column('id', q.list(q.int64()), { primaryKey: true })])], sync: (t, out) => out.insert(t[0], [[[1]]]) };
  assert.throws(() => q.runSync(listKey, { deterministicCqId: true }), (e) => e.kind === 'invalid-spec' && /deterministic_cq_id: table `parents`: column `id` \(list<int64>\): row 0: a primary key of type list<int64> cannot derive an id/.test(e.message));
  const textId = { ...family, sync: (t, out) => out.insert(t[0], [['7', 'a']]) };
  assert.throws(() => q.runSync(textId, { tables: ['parents'], skipDependentTables: true, deterministicCqId: true }), (e) => e.kind === 'internal' && /column `id` \(int64\): row 0: "7" is not an integer/.test(e.message));
  // A key column named outside ASCII hashes its name's UTF-8 bytes, as Rust and Python do.
  assert.equal(Buffer.from(q.deterministicIds([['é', q.int32(), [7]]], 1)[0]).toString('hex').slice(0, 8), '4131b48f');
});

test('child rows must name a parent row of the batch', () => {
  for (const index of [-1, 3, '0', 0.5]) {
    const stray = { ...family, *resolve() { yield [index, [1, 0]]; } };
    assert.throws(() => q.runSync(stray), /resolving table `children`: a child row names parent row/);
  }
  const broken = { ...family, resolve() { throw q.QuarryError.unavailable('the API is down'); } };
  assert.throws(() => q.runSync(broken), (e) => e.kind === 'unavailable' && e.message === 'resolving table `children`: the API is down');
  const childless = { ...family, resolve: undefined };
  assert.throws(() => q.runSync(childless), /`children` is a child of `parents`, but the plugin has no `resolve`/);
});

test('values of the wrong kind are refused, not stored as something else', () => {
  const one = (type, value) => q.encodeBatch(q.schema([q.field('c', type, true)]), [type], [[value]], 1);
  assert.throws(() => one(q.boolean(), 1), /row 0: 1 is not a boolean/);
  assert.throws(() => one(q.date32(), '2024-13-45'), /`2024-13-45` is not a date/);
  assert.throws(() => one(q.date32(), '2024-02-30'), /`2024-02-30` is not a date/);
  assert.throws(() => one(q.date32(), new Date(NaN)), /an invalid Date is not a date/);
  assert.throws(() => one(q.date32(), 2 ** 40), /out of range/);
  const early = read(one(q.date32(), '0001-01-01'));
  assert.equal(early.getChild('c').data[0].values[0], -719162);
  const seconds = read(one(q.timestamp('s', null), new Date(-1500)));
  assert.equal(seconds.getChild('c').data[0].values[0], -2n);
  const generated = { ...family, sync(t, out) { out.insert(t[0], (function* rows() { yield [1, 'a']; })()); } };
  assert.equal(rowsOf(q.runSync(generated, { tables: ['parents'], skipDependentTables: true }), 'parents').length, 1);
});

test('a batch over the emit limit goes as several, in order', () => {
  const big = { ...family, sync: (t, out) => out.insertColumns('loose', { x: Array.from({ length: 10000 }, (_, i) => i) }) };
  const limit = q.limits.maxEmitBytes;
  q.limits.maxEmitBytes = 20000;
  let sink;
  try {
    sink = q.runSync(big, { tables: ['loose'] });
  } finally {
    q.limits.maxEmitBytes = limit;
  }
  const inserts = sink.messages.filter(([kind]) => kind === 'insert');
  assert.ok(inserts.length > 4 && inserts.every(([, m]) => m.length <= 20000));
  assert.deepEqual(rowsOf(sink, 'loose').map((r) => Number(r.x)), Array.from({ length: 10000 }, (_, i) => i));
});
