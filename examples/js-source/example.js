// Quarry's example source plugin in JavaScript.
//
// - `test_rows`: the same rows as the `test` plugin's `test_rows` (every value a function of the
//   row number), `num_rows` of them in batches of `batch_size`: the workload `quarry bench` times.
// - `js_types`: one column of each type the JavaScript SDK writes, three rows.
// - `js_items`: a paginated REST API: `GET {base_url}/items/1.json` answers
//   `{"items": [...], "next": "/items/2.json"}`, and pages are followed until `next` is null.
//   The host answers only if `base_url`'s host is granted (`permissions.network`).

import * as q from 'quarry-sdk/core.js';

// Microseconds stay exact as numbers up to 2^53 (year 2255), so no BigInt arithmetic per row.
const EPOCH_2024_US = 1704067200000000;
const TAGS_A = Array.from({ length: 5 }, (_, k) => `a${k}`);
const TAGS_B = Array.from({ length: 50 }, (_, k) => `b${k}`);
const TAGS_C = Array.from({ length: 500 }, (_, k) => `c${k}`);
const pad = (n, width) => String(n).padStart(width, '0');

export function testRowsTable(name) {
  return new q.Table(name, [
    new q.Column('id', q.int64(), { primaryKey: true, description: 'The row number' }),
    new q.Column('name', q.utf8(), { description: '"name_" and the row number in 11 digits' }),
    new q.Column('value', q.float64(), { description: '(id % 100003) / 7' }),
    new q.Column('flag', q.boolean(), { description: 'id % 3 == 0' }),
    new q.Column('created_at', q.timestamp('us', 'UTC'), { description: '2024-01-01T00:00:00Z + id seconds + (id % 1000) microseconds' }),
    new q.Column('payload', q.utf8(), { description: 'A 101-character JSON document' }),
    new q.Column('tags', q.list(q.utf8()), { description: '["a" + id % 5, "b" + id % 50, "c" + id % 500]' }),
  ], { description: 'Synthetic rows; every value is a function of the row number `id`' });
}

/** Columns of rows `start..end`, as the `test` plugin computes them. */
export function testRowsColumns(start, end) {
  const n = end - start;
  const cols = { id: new Array(n), name: new Array(n), value: new Array(n), flag: new Array(n), created_at: new Array(n), payload: new Array(n), tags: new Array(n) };
  for (let r = 0; r < n; r++) {
    const i = start + r;
    const digits = pad(i, 11);
    cols.id[r] = i;
    cols.name[r] = `name_${digits}`;
    cols.value[r] = (i % 100003) / 7;
    cols.flag[r] = i % 3 === 0;
    cols.created_at[r] = EPOCH_2024_US + i * 1000000 + (i % 1000);
    cols.payload[r] = `{"ref":"${digits}","name":"name_${digits}","score":"${pad(i % 1000, 3)}","group":"g${pad(i % 97, 2)}","active":${i % 3 === 0 ? 1 : 0},"note":"lorem"}`;
    cols.tags[r] = [TAGS_A[i % 5], TAGS_B[i % 50], TAGS_C[i % 500]];
  }
  return cols;
}

const TYPES = new q.Table('js_types', [
  new q.Column('id', q.int64(), { primaryKey: true }),
  new q.Column('i8', q.int8()),
  new q.Column('u32', q.uint32()),
  new q.Column('u64', q.uint64()),
  new q.Column('f64', q.float64()),
  new q.Column('flag', q.boolean()),
  new q.Column('text', q.utf8()),
  new q.Column('blob', q.binary()),
  new q.Column('uid', q.uuid()),
  new q.Column('doc', q.json()),
  new q.Column('day', q.date32()),
  new q.Column('at', q.timestamp('us', 'UTC')),
  new q.Column('words', q.list(q.utf8())),
], { description: 'One column per type the JavaScript SDK writes' });

export const TYPE_ROWS = [
  [1, -128, 4294967295, 2n ** 63n + 5n, -2.25, true, 'plain', new Uint8Array([0, 1, 255]),
    '12345678-1234-5678-9abc-def012345678', { a: [1, 2], b: null }, '2024-02-29',
    new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), ['x', 'y']],
  [2, null, null, null, null, null, null, null, null, null, null, null, null],
  [3, 127, 0, 0, 1e300, false, 'héllo ☃ 𝄞', new Uint8Array(), '00000000-0000-0000-0000-000000000001', 'text',
    new Date(Date.UTC(1969, 11, 31)), 1704067200000001n, []],
];

const ITEMS = new q.Table('js_items', [
  new q.Column('id', q.int64(), { primaryKey: true }),
  new q.Column('title', q.utf8()),
  new q.Column('tags', q.json()),
  new q.Column('page', q.int32(), { description: 'The page the item came on' }),
], { description: 'The items of the paginated API at `base_url`' });

export const definition = {
  name: 'js-example',
  version: '0.1.0',
  description: "Quarry's example source plugin in JavaScript: synthetic rows and a paginated REST API",
  specSchema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    additionalProperties: false,
    properties: {
      num_rows: { type: 'integer', minimum: 0, default: 1000, description: 'Rows of `test_rows`' },
      batch_size: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000, description: 'Rows per batch of `test_rows`' },
      base_url: { type: 'string', description: 'The paginated API: `{base_url}/items/1.json` is the first page' },
      max_pages: { type: 'integer', minimum: 1, default: 1000, description: 'Stop after this many pages' },
    },
  },
  needs: { network: ['spec:base_url'] },

  create(spec) {
    return new Example(spec);
  },
};

export class Example {
  constructor(spec) {
    this.spec = spec;
    this.numRows = spec.num_rows ?? 1000;
    this.batchSize = spec.batch_size ?? 10000;
  }

  tables() {
    return [testRowsTable('test_rows'), TYPES, ITEMS];
  }

  sync(tables, out) {
    for (const table of tables) {
      if (table.name === 'test_rows') {
        for (let start = 0; start < this.numRows; start += this.batchSize) {
          out.insertColumns(table, testRowsColumns(start, Math.min(start + this.batchSize, this.numRows)));
        }
      } else if (table.name === 'js_types') {
        out.insert(table, TYPE_ROWS);
      } else if (table.name === 'js_items') {
        this.syncItems(table, out);
      }
    }
  }

  /** Follows the `next` links from the first page; `get(url)` is the HTTP client (a test's fake). */
  syncItems(table, out, get = null) {
    const base = this.spec.base_url;
    if (!base) return;
    get ??= this.httpGet;
    let url = `${base.replace(/\/$/, '')}/items/1.json`;
    for (let page = 1; url; page++) {
      if (page > (this.spec.max_pages ?? 1000)) {
        throw q.QuarryError.internal(`${url}: more than max_pages (${this.spec.max_pages ?? 1000}) pages; raise max_pages`);
      }
      const body = get(url);
      if (!body || !Array.isArray(body.items)) {
        throw q.QuarryError.internal(`${url} answered without an \`items\` array`);
      }
      out.insert(table, body.items.map((item) => ({ id: item.id, title: item.title, tags: item.tags ?? null, page })));
      url = body.next ? new URL(body.next, url).href : null;
    }
  }
}
