// Arrow for the JavaScript SDK: column types, and a plugin's JavaScript values turned into Arrow
// data (apache-arrow's `makeData`, buffers filled here so every value is exact: 64-bit integers
// and timestamps as BigInt, never through a float) and written as an IPC stream.

import {
  Binary, Bool, DateDay, Field, FixedSizeBinary, Float32, Float64, Int8, Int16, Int32, Int64,
  LargeBinary, LargeUtf8, List, RecordBatch, Schema, Struct, Table, TimestampMicrosecond,
  TimestampMillisecond, TimestampNanosecond, TimestampSecond, Uint8, Uint16, Uint32, Uint64, Utf8,
  makeData, tableToIPC,
} from 'apache-arrow';

const encoder = new TextEncoder();

/** A column type: `kind` says how values are encoded; `arrow()` makes the Arrow type. */
class DataType {
  constructor(kind, name, arrow, options = {}) {
    this.kind = kind;
    this.name = name;
    this.arrow = arrow;
    Object.assign(this, options);
  }

  toString() {
    return this.name;
  }
}

const integer = (name, Type, Array, min, max) =>
  () => new DataType('int', name, () => new Type(), { Array, min, max });
const bigInteger = (name, Type, Array, min, max) =>
  () => new DataType('bigint', name, () => new Type(), { Array, min, max });

export const int8 = integer('int8', Int8, Int8Array, -128, 127);
export const int16 = integer('int16', Int16, Int16Array, -32768, 32767);
export const int32 = integer('int32', Int32, Int32Array, -(2 ** 31), 2 ** 31 - 1);
export const int64 = bigInteger('int64', Int64, BigInt64Array, -(2n ** 63n), 2n ** 63n - 1n);
export const uint8 = integer('uint8', Uint8, Uint8Array, 0, 255);
export const uint16 = integer('uint16', Uint16, Uint16Array, 0, 65535);
export const uint32 = integer('uint32', Uint32, Uint32Array, 0, 2 ** 32 - 1);
export const uint64 = bigInteger('uint64', Uint64, BigUint64Array, 0n, 2n ** 64n - 1n);
export const float32 = () => new DataType('float', 'float32', () => new Float32(), { Array: Float32Array });
export const float64 = () => new DataType('float', 'float64', () => new Float64(), { Array: Float64Array });
export const boolean = () => new DataType('bool', 'bool', () => new Bool());
export const utf8 = () => new DataType('utf8', 'utf8', () => new Utf8(), { Offsets: Int32Array });
export const largeUtf8 = () => new DataType('utf8', 'large_utf8', () => new LargeUtf8(), { Offsets: BigInt64Array });
export const binary = () => new DataType('binary', 'binary', () => new Binary(), { Offsets: Int32Array });
export const largeBinary = () => new DataType('binary', 'large_binary', () => new LargeBinary(), { Offsets: BigInt64Array });
export const date32 = () => new DataType('date', 'date32', () => new DateDay());
export const fixedSizeBinary = (width) =>
  new DataType('fixed', `fixed_size_binary[${width}]`, () => new FixedSizeBinary(width), { width });

const TIMESTAMPS = { s: TimestampSecond, ms: TimestampMillisecond, us: TimestampMicrosecond, ns: TimestampNanosecond };
const PER_MILLISECOND = { s: null, ms: 1n, us: 1000n, ns: 1000000n };

/** Values: `Date`s, or integers (number or BigInt) in `unit` since the epoch. */
export function timestamp(unit = 'us', tz = 'UTC') {
  const Type = TIMESTAMPS[unit];
  if (!Type) throw new TypeError(`timestamp unit must be one of s, ms, us, ns, not ${unit}`);
  return new DataType('timestamp', `timestamp[${unit}${tz ? `, tz=${tz}` : ''}]`, () => new Type(tz ?? null), { unit });
}

/** A list of `item` values; each value is an array (or null). */
export const list = (item) =>
  new DataType('list', `list<${item}>`, () => new List(new Field('item', item.arrow(), true)), { item });

/** CloudQuery's `uuid`: values are UUID text or 16 bytes. */
export const uuid = () => new DataType('uuid', 'uuid', () => new FixedSizeBinary(16),
  { width: 16, extension: ['uuid', 'uuid-serialized'] });
/** CloudQuery's `json`: values are anything `JSON.stringify` takes (null is SQL NULL). */
export const json = () => new DataType('json', 'json', () => new Binary(),
  { Offsets: Int32Array, extension: ['json', 'json-serialized'] });
/** CloudQuery's `inet`: an IP address or network as text. */
export const inet = () => new DataType('text', 'inet', () => new Binary(),
  { Offsets: Int32Array, extension: ['inet', 'inet-serialized'] });
/** CloudQuery's `mac`: a MAC address as text. */
export const mac = () => new DataType('text', 'mac', () => new Binary(),
  { Offsets: Int32Array, extension: ['mac', 'mac-serialized'] });

/** An Arrow field with its metadata (an extension type's keys added). */
export function field(name, type, nullable, metadata = {}) {
  const meta = new Map(Object.entries(metadata));
  if (type.extension) {
    meta.set('ARROW:extension:name', type.extension[0]);
    meta.set('ARROW:extension:metadata', type.extension[1]);
  }
  return new Field(name, type.arrow(), nullable, meta);
}

export function schema(fields, metadata = {}) {
  return new Schema(fields, new Map(Object.entries(metadata)));
}

/** An `arrow-schema`: an IPC stream of the schema alone. */
export function encodeSchema(arrowSchema) {
  return tableToIPC(new Table(arrowSchema), 'stream');
}

/**
 * An `arrow-batch`: an IPC stream of the schema and one record batch of `rows` rows. `columns`
 * holds one array of values per field; `types` the SDK type of each.
 */
export function encodeBatch(arrowSchema, types, columns, rows) {
  const children = arrowSchema.fields.map((f, i) => {
    if (columns[i].length !== rows) {
      throw new Error(`column \`${f.name}\` has ${columns[i].length} values, not ${rows}`);
    }
    try {
      return encode(types[i], f, columns[i]);
    } catch (e) {
      throw new Error(`column \`${f.name}\` (${types[i]}): ${e.message}`);
    }
  });
  const data = makeData({ type: new Struct(arrowSchema.fields), length: rows, nullCount: 0, children });
  return tableToIPC(new Table(arrowSchema, [new RecordBatch(arrowSchema, data)]), 'stream');
}

// The loops below are plain indexed `for` loops, without callbacks or iterators: inside a
// component, SpiderMonkey interprets (there is no JIT), and each closure call or iterator step
// costs more than the work it wraps.

function countNulls(values) {
  let nulls = 0;
  for (let i = 0; i < values.length; i++) if (values[i] == null) nulls++;
  return nulls;
}

/** Arrow's bitmap (least significant bit first) of `test` over `values`. */
export function packBits(values, test) {
  const bits = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (test(values[i])) bits[i >> 3] |= 1 << (i & 7);
  return bits;
}

function validBits(values) {
  const bits = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (values[i] != null) bits[i >> 3] |= 1 << (i & 7);
  return bits;
}

function trueBits(values) {
  const bits = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (values[i] === true) bits[i >> 3] |= 1 << (i & 7);
  return bits;
}

function encode(type, arrowField, values) {
  const length = values.length;
  const nullCount = countNulls(values);
  if (nullCount && !arrowField.nullable) {
    throw new Error(`row ${values.findIndex((v) => v == null)} is null, but the column is not nullable`);
  }
  const base = { type: arrowField.type, length, nullCount, nullBitmap: nullCount ? validBits(values) : null };
  if (nullCount === length && (type.kind === 'fixed' || type.kind === 'uuid')) {
    // All null (a top-level table's `_cq_parent_id`): zeroed values.
    base.data = new Uint8Array(length * type.width);
    return makeData(base);
  }
  switch (type.kind) {
    case 'int': {
      const data = new type.Array(length);
      for (let i = 0; i < length; i++) data[i] = integerValue(type, values[i], i);
      base.data = data;
      return makeData(base);
    }
    case 'float': {
      const data = new type.Array(length);
      for (let i = 0; i < length; i++) data[i] = floatValue(values[i]);
      base.data = data;
      return makeData(base);
    }
    case 'bigint':
      base.data = bigints(type, values);
      return makeData(base);
    case 'bool':
      for (let i = 0; i < length; i++) {
        const v = values[i];
        if (v != null && v !== true && v !== false) throw new TypeError(`row ${i}: ${JSON.stringify(v)} is not a boolean`);
      }
      base.data = trueBits(values);
      return makeData(base);
    case 'timestamp': {
      const data = new BigInt64Array(length);
      for (let i = 0; i < length; i++) data[i] = timestampValue(values[i], type.unit);
      base.data = data;
      return makeData(base);
    }
    case 'date': {
      const data = new Int32Array(length);
      for (let i = 0; i < length; i++) data[i] = dateValue(values[i]);
      base.data = data;
      return makeData(base);
    }
    case 'utf8':
    case 'text': {
      const strings = nullCount ? new Array(length) : values;
      for (let i = 0; i < length; i++) {
        const v = values[i];
        if (v == null) strings[i] = '';
        else if (typeof v !== 'string') throw new TypeError(`row ${i}: ${JSON.stringify(v)} is not a string`);
        else if (nullCount) strings[i] = v;
      }
      return variable(base, type, strings);
    }
    case 'binary': {
      const bytes = new Array(length);
      for (let i = 0; i < length; i++) bytes[i] = values[i] == null ? EMPTY : bytesValue(values[i]);
      return variable(base, type, bytes);
    }
    case 'json': {
      const texts = new Array(length);
      for (let i = 0; i < length; i++) texts[i] = values[i] == null ? '' : JSON.stringify(values[i]);
      return variable(base, type, texts);
    }
    case 'fixed':
    case 'uuid': {
      const width = type.width;
      const data = new Uint8Array(length * width);
      for (let i = 0; i < length; i++) {
        const v = values[i];
        if (v == null) continue;
        const bytes = type.kind === 'uuid' && typeof v === 'string' ? uuidBytes(v) : bytesValue(v);
        if (bytes.length !== width) throw new Error(`row ${i} holds ${bytes.length} bytes, not ${width}`);
        data.set(bytes, i * width);
      }
      base.data = data;
      return makeData(base);
    }
    case 'list': {
      const offsets = new Int32Array(length + 1);
      let total = 0;
      for (let i = 0; i < length; i++) {
        const v = values[i];
        if (v != null) {
          if (!Array.isArray(v)) throw new Error(`row ${i} is not an array`);
          total += v.length;
        }
        offsets[i + 1] = total;
      }
      const items = new Array(total);
      let at = 0;
      for (let i = 0; i < length; i++) {
        const v = values[i];
        if (v == null) continue;
        for (let k = 0; k < v.length; k++) items[at++] = v[k];
      }
      base.valueOffsets = offsets;
      base.child = encode(type.item, arrowField.type.children[0], items);
      return makeData(base);
    }
    default:
      throw new Error(`no encoder for ${type}`);
  }
}

const EMPTY = new Uint8Array();

function integerValue(type, v, row) {
  if (v == null) return 0;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isInteger(n)) throw new TypeError(`row ${row}: ${JSON.stringify(v)} is not an integer`);
  if (n < type.min || n > type.max) throw new RangeError(`row ${row}: ${n} is out of range`);
  return n;
}

function floatValue(v) {
  if (v == null) return 0;
  if (typeof v !== 'number') throw new TypeError(`${JSON.stringify(v)} is not a number`);
  return v;
}

function bigints(type, values) {
  const out = new type.Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v == null) continue;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`row ${i}: ${v} is not an exact integer; pass a BigInt`);
    } else if (typeof v !== 'bigint') {
      throw new TypeError(`row ${i}: ${JSON.stringify(v)} is not an integer`);
    }
    const big = BigInt(v);
    if (big < type.min || big > type.max) throw new RangeError(`row ${i}: ${big} is out of range`);
    out[i] = big;
  }
  return out;
}

function timestampValue(v, unit) {
  if (v == null) return 0n;
  if (v instanceof Date) {
    const ms = v.getTime();
    // Seconds round down, as they do in the Python SDK (-1.5 s is -2).
    return unit === 's' ? BigInt(Math.floor(ms / 1000)) : BigInt(ms) * PER_MILLISECOND[unit];
  }
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new RangeError(`${v} is not an exact integer; pass a BigInt`);
  }
  if (typeof v !== 'number' && typeof v !== 'bigint') {
    throw new TypeError(`a timestamp is a Date or an integer, not ${typeof v}`);
  }
  return BigInt(v);
}

function dateValue(v) {
  if (v == null) return 0;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError('an invalid Date is not a date');
    return Math.floor(v.getTime() / 86400000);
  }
  if (typeof v === 'string') {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v);
    let days = NaN;
    if (m) {
      // setUTCFullYear, not Date.UTC: that one reads years 0 to 99 as 1900 to 1999.
      const d = new Date(0);
      d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      // A date that rolls over (2024-02-30 is March 1st) does not read back: it is not a date.
      if (d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3])) {
        days = d.getTime() / 86400000;
      }
    }
    if (Number.isNaN(days)) throw new TypeError(`\`${v}\` is not a date (YYYY-MM-DD)`);
    return days;
  }
  if (Number.isInteger(v)) {
    if (v < -(2 ** 31) || v >= 2 ** 31) throw new RangeError(`${v} days is out of range`);
    return v;
  }
  throw new TypeError(`a date is a Date, YYYY-MM-DD text or days since 1970, not ${JSON.stringify(v)}`);
}

function bytesValue(v) {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return encoder.encode(v);
  throw new TypeError(`${JSON.stringify(v)} is not bytes (a Uint8Array) or text`);
}

/** The 16 bytes of UUID text (`12345678-1234-5678-9abc-def012345678`). */
export function uuidBytes(text) {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`\`${text}\` is not a UUID`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Strings (or byte arrays) as one value buffer and its offsets. */
function variable(base, type, values) {
  const big = type.Offsets === BigInt64Array;
  const n = values.length;
  const offsets = new type.Offsets(n + 1);
  let data;
  if (n === 0 || typeof values[0] === 'string') {
    const joined = values.join('');
    data = encoder.encode(joined);
    if (data.length === joined.length) {
      // ASCII only: a string's length in UTF-16 units is its length in bytes.
      let at = 0;
      for (let i = 0; i < n; i++) {
        at += values[i].length;
        offsets[i + 1] = big ? BigInt(at) : at;
      }
      return finish(base, offsets, data);
    }
    const encoded = new Array(n);
    for (let i = 0; i < n; i++) encoded[i] = encoder.encode(values[i]);
    values = encoded;
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += values[i].length;
    offsets[i + 1] = big ? BigInt(total) : total;
  }
  if (!big && total > 0x7fffffff) throw new RangeError('more than 2 GiB of values in one batch: send smaller batches');
  data = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < n; i++) {
    data.set(values[i], at);
    at += values[i].length;
  }
  return finish(base, offsets, data);
}

function finish(base, valueOffsets, data) {
  base.valueOffsets = valueOffsets;
  base.data = data;
  return makeData(base);
}

/**
 * A primary-key value's canonical bytes, as the Rust SDK hashes them for a deterministic
 * `_cq_id` (fixed-width values little-endian, text as UTF-8, bytes as they are).
 */
export function keyBytes(type, value) {
  switch (type.kind) {
    case 'int':
      return new Uint8Array(new type.Array([integerValue(type, value, 0)]).buffer);
    case 'float':
      return new Uint8Array(new type.Array([floatValue(value)]).buffer);
    case 'bigint':
      return new Uint8Array(bigints(type, [value]).buffer);
    case 'bool':
      return new Uint8Array([value ? 1 : 0]);
    case 'utf8':
    case 'text':
      return encoder.encode(value);
    case 'json':
      return encoder.encode(JSON.stringify(value));
    case 'binary':
    case 'fixed':
      return bytesValue(value);
    case 'uuid':
      return typeof value === 'string' ? uuidBytes(value) : bytesValue(value);
    case 'timestamp':
      return new Uint8Array(new BigInt64Array([timestampValue(value, type.unit)]).buffer);
    case 'date':
      return new Uint8Array(new Int32Array([dateValue(value)]).buffer);
    default: {
      const e = new TypeError(`a primary key of type ${type} cannot derive an id`);
      e.unsupportedKey = true;
      throw e;
    }
  }
}
