"""Arrow types, and an Arrow IPC stream writer in pure Python.

pyarrow has no WASI build, so a plugin's rows are turned into Arrow here: each column's values
(Python lists) become Arrow buffers with the `array` module, `bytes.join` and `int(..., 2)`,
which run at C speed inside the interpreter, and the schema and record batch messages are
FlatBuffers written by `_flatbuffers`. The output is what the contract asks for: an IPC stream of
one schema message (an `arrow-schema`), or of a schema message and one record batch (an
`arrow-batch`), uncompressed, little-endian.
"""

import datetime as _dt
import json as _json
import struct as _struct
import uuid as _uuid
from array import array as _array
from itertools import accumulate as _accumulate, chain as _chain

from ._flatbuffers import Builder as _Builder

# The FlatBuffers union tags of Arrow's `Type` and `MessageHeader`.
_TYPE_INT, _TYPE_FLOAT, _TYPE_BINARY, _TYPE_UTF8, _TYPE_BOOL = 2, 3, 4, 5, 6
_TYPE_DATE, _TYPE_TIMESTAMP, _TYPE_LIST, _TYPE_FIXED_SIZE_BINARY = 8, 10, 12, 15
_TYPE_LARGE_BINARY, _TYPE_LARGE_UTF8 = 19, 20
_HEADER_SCHEMA, _HEADER_RECORD_BATCH = 1, 3
_METADATA_V5 = 4
_CONTINUATION = b"\xff\xff\xff\xff"
END_OF_STREAM = _CONTINUATION + b"\0\0\0\0"
_TWO_LONGS = _struct.Struct("<qq")
_TIME_UNITS = {"s": 0, "ms": 1, "us": 2, "ns": 3}
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


class DataType:
    """An Arrow data type. Make one with the functions below (`int64()`, `utf8()`, ...)."""

    __slots__ = ("kind", "type_id", "width", "signed", "unit", "tz", "item", "extension", "_name")

    def __init__(self, kind, type_id, name, width=0, signed=True, unit=None, tz=None, item=None,
                 extension=None):
        self.kind = kind  # how values are encoded: int, float, bool, utf8, binary, fixed, ...
        self.type_id = type_id
        self.width = width  # bytes per value of a fixed-width type
        self.signed = signed
        self.unit = unit
        self.tz = tz
        self.item = item  # a list's item type
        self.extension = extension  # (ARROW:extension:name, ARROW:extension:metadata)
        self._name = name

    def __repr__(self):
        return self._name

    def __eq__(self, other):
        return isinstance(other, DataType) and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))


def _int(bits, signed):
    name = ("int%d" if signed else "uint%d") % bits
    return DataType("int", _TYPE_INT, name, width=bits // 8, signed=signed)


def int8(): return _int(8, True)
def int16(): return _int(16, True)
def int32(): return _int(32, True)
def int64(): return _int(64, True)
def uint8(): return _int(8, False)
def uint16(): return _int(16, False)
def uint32(): return _int(32, False)
def uint64(): return _int(64, False)
def float32(): return DataType("float", _TYPE_FLOAT, "float32", width=4)
def float64(): return DataType("float", _TYPE_FLOAT, "float64", width=8)
def boolean(): return DataType("bool", _TYPE_BOOL, "bool")
def utf8(): return DataType("utf8", _TYPE_UTF8, "utf8", width=4)
def large_utf8(): return DataType("utf8", _TYPE_LARGE_UTF8, "large_utf8", width=8)
def binary(): return DataType("binary", _TYPE_BINARY, "binary", width=4)
def large_binary(): return DataType("binary", _TYPE_LARGE_BINARY, "large_binary", width=8)
def date32(): return DataType("date", _TYPE_DATE, "date32", width=4)


def fixed_size_binary(width):
    return DataType("fixed", _TYPE_FIXED_SIZE_BINARY, "fixed_size_binary[%d]" % width, width=width)


def timestamp(unit="us", tz="UTC"):
    """Values: `datetime.datetime` (naive ones are taken as UTC) or integers in `unit`."""
    if unit not in _TIME_UNITS:
        raise ValueError("timestamp unit must be one of s, ms, us, ns, not %r" % (unit,))
    name = "timestamp[%s%s]" % (unit, ", tz=%s" % tz if tz else "")
    return DataType("timestamp", _TYPE_TIMESTAMP, name, width=8, unit=unit, tz=tz)


def list_(item):
    """A list of `item` values; each value is a Python list (or None)."""
    return DataType("list", _TYPE_LIST, "list<%r>" % (item,), width=4, item=item)


def uuid():
    """CloudQuery's `uuid`: values are `uuid.UUID`, 16 bytes, or UUID text."""
    return DataType("uuid", _TYPE_FIXED_SIZE_BINARY, "uuid", width=16,
                    extension=("uuid", "uuid-serialized"))


def json():
    """CloudQuery's `json`: values are anything `json.dumps` accepts (None is SQL NULL)."""
    return DataType("json", _TYPE_BINARY, "json", width=4, extension=("json", "json-serialized"))


def inet():
    """CloudQuery's `inet`: an IP address or network as text (`10.0.0.0/8`)."""
    return DataType("text", _TYPE_BINARY, "inet", width=4, extension=("inet", "inet-serialized"))


def mac():
    """CloudQuery's `mac`: a MAC address as text (`08:00:2b:01:02:03`)."""
    return DataType("text", _TYPE_BINARY, "mac", width=4, extension=("mac", "mac-serialized"))


class Field:
    __slots__ = ("name", "type", "nullable", "metadata")

    def __init__(self, name, data_type, nullable=True, metadata=None):
        self.name = name
        self.type = data_type
        self.nullable = nullable
        self.metadata = dict(metadata or {})
        if data_type.extension:
            self.metadata["ARROW:extension:name"] = data_type.extension[0]
            self.metadata["ARROW:extension:metadata"] = data_type.extension[1]


class Schema:
    __slots__ = ("fields", "metadata", "_message")

    def __init__(self, fields, metadata=None):
        self.fields = list(fields)
        self.metadata = dict(metadata or {})
        self._message = None

    def message(self):
        """The schema message, framed; encoded once."""
        if self._message is None:
            b = _Builder()
            schema = _schema(b, self)
            self._message = _frame(b, _HEADER_SCHEMA, schema, 0)
        return self._message


def encode_schema(schema):
    """An `arrow-schema`: an IPC stream of the schema message alone."""
    return schema.message() + END_OF_STREAM


def encode_batch(schema, columns, rows):
    """An `arrow-batch`: an IPC stream of the schema and one record batch of `rows` rows.

    `columns` holds one sequence of Python values per field, in the schema's order.
    """
    nodes, buffers = [], []
    for field, values in zip(schema.fields, columns, strict=True):
        if len(values) != rows:
            raise ValueError("column `%s` has %d values, not %d" % (field.name, len(values), rows))
        try:
            _encode(field, values, nodes, buffers)
        except (TypeError, ValueError, OverflowError, AttributeError) as e:
            raise ValueError("column `%s` (%r): %s" % (field.name, field.type, e)) from None
    described, body, at = [], [], 0
    for buf in buffers:
        described.append((at, len(buf)))
        body.append(buf)
        pad = -len(buf) % 8
        if pad:
            body.append(bytes(pad))
        at += len(buf) + pad
    b = _Builder()
    buffer_vec = b.structs(_TWO_LONGS, described, 8)
    node_vec = b.structs(_TWO_LONGS, nodes, 8)
    b.start(5)
    b.add_i64(0, rows)
    b.add_offset(1, node_vec)
    b.add_offset(2, buffer_vec)
    batch = b.end()
    return b"".join([schema.message(), _frame(b, _HEADER_RECORD_BATCH, batch, at), *body,
                     END_OF_STREAM])


# --- FlatBuffers tables ------------------------------------------------------------------------

def _frame(b, header_type, header, body_length):
    b.start(5)
    b.add_i16(0, _METADATA_V5)
    b.add_u8(1, header_type)
    b.add_offset(2, header)
    b.add_i64(3, body_length)
    meta = b.finish(b.end())
    meta += bytes(-len(meta) % 8)
    return _CONTINUATION + _struct.pack("<I", len(meta)) + meta


def _key_values(b, metadata):
    pairs = []
    for key, value in sorted(metadata.items()):
        k, v = b.string(key), b.string(value)
        b.start(2)
        b.add_offset(0, k)
        b.add_offset(1, v)
        pairs.append(b.end())
    return b.offsets(pairs)


def _schema(b, schema):
    fields = b.offsets([_field(b, f) for f in schema.fields])
    meta = _key_values(b, schema.metadata) if schema.metadata else None
    b.start(4)
    b.add_i16(0, 0)  # little-endian
    b.add_offset(1, fields)
    if meta is not None:
        b.add_offset(2, meta)
    return b.end()


def _field(b, field):
    t = field.type
    name = b.string(field.name)
    children = b.offsets([_field(b, Field("item", t.item))] if t.kind == "list" else [])
    type_table = _type(b, t)
    meta = _key_values(b, field.metadata) if field.metadata else None
    b.start(7)
    b.add_offset(0, name)
    b.add_bool(1, field.nullable)
    b.add_u8(2, t.type_id)
    b.add_offset(3, type_table)
    b.add_offset(5, children)
    if meta is not None:
        b.add_offset(6, meta)
    return b.end()


def _type(b, t):
    if t.type_id == _TYPE_TIMESTAMP and t.tz:
        tz = b.string(t.tz)
    b.start(2)
    if t.type_id == _TYPE_INT:
        b.add_i32(0, t.width * 8)
        b.add_bool(1, t.signed)
    elif t.type_id == _TYPE_FLOAT:
        b.add_i16(0, 1 if t.width == 4 else 2)
    elif t.type_id == _TYPE_FIXED_SIZE_BINARY:
        b.add_i32(0, t.width)
    elif t.type_id == _TYPE_DATE:
        b.add_i16(0, 0)  # days
    elif t.type_id == _TYPE_TIMESTAMP:
        b.add_i16(0, _TIME_UNITS[t.unit])
        if t.tz:
            b.add_offset(1, tz)
    return b.end()


# --- Column values to buffers ------------------------------------------------------------------

_BIT_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_ARRAY_CODES = {(1, True): "b", (2, True): "h", (4, True): "i", (8, True): "q",
                (1, False): "B", (2, False): "H", (4, False): "I", (8, False): "Q"}


def pack_bits(flags):
    """Arrow's bitmap (least significant bit first) of `flags`, one 0/1 byte per value."""
    if not flags:
        return b""
    return int(flags.translate(_BIT_DIGITS)[::-1], 2).to_bytes((len(flags) + 7) // 8, "little")


def _encode(field, values, nodes, buffers):
    rows = len(values)
    nulls = values.count(None)
    if nulls and not field.nullable:
        row = values.index(None)
        raise ValueError("row %d is null, but the column is not nullable" % row)
    nodes.append((rows, nulls))
    t = field.type
    kind = t.kind
    if nulls == rows and kind in ("fixed", "uuid"):
        # All null (a top-level table's `_cq_parent_id`): zeroed bits and values.
        buffers.append(bytes((rows + 7) // 8))
        buffers.append(bytes(t.width * rows))
        return
    buffers.append(pack_bits(bytes([v is not None for v in values])) if nulls else b"")
    if nulls and kind in ("int", "float", "timestamp", "date"):
        values = [0 if v is None else v for v in values]
    if kind == "int":
        buffers.append(_array(_ARRAY_CODES[(t.width, t.signed)], values).tobytes())
    elif kind == "float":
        buffers.append(_array("f" if t.width == 4 else "d", values).tobytes())
    elif kind == "bool":
        buffers.append(pack_bits(bytes(map(bool, values))))
    elif kind == "timestamp":
        buffers.append(_array("q", _timestamps(values, t.unit)).tobytes())
    elif kind == "date":
        buffers.append(_array(_ARRAY_CODES[(4, True)], _dates(values)).tobytes())
    elif kind in ("utf8", "text"):
        _variable(t, *_utf8(values, nulls), buffers)
    elif kind == "binary":
        if nulls:
            values = [b"" if v is None else v for v in values]
        _variable(t, map(len, values), b"".join(values), buffers)
    elif kind == "json":
        dumps = _json.dumps
        encoded = [b"" if v is None else dumps(v, separators=(",", ":"), ensure_ascii=False)
                   .encode() for v in values]
        _variable(t, map(len, encoded), b"".join(encoded), buffers)
    elif kind in ("fixed", "uuid"):
        buffers.append(_fixed(values, t, nulls))
    elif kind == "list":
        lengths = [0 if v is None else len(v) for v in values] if nulls else list(map(len, values))
        offsets = _array("i", _accumulate(lengths, initial=0))
        if offsets[-1] > 0x7FFFFFFF:
            raise ValueError("the lists hold more than 2^31 items in one batch")
        buffers.append(offsets.tobytes())
        items = list(_chain.from_iterable([v for v in values if v is not None] if nulls
                                          else values))
        _encode(Field("item", t.item), items, nodes, buffers)
    else:
        raise TypeError("no encoder for %r" % (t,))


def _utf8(values, nulls):
    """The lengths in bytes of `values` (strings) as UTF-8, and their concatenation."""
    if nulls:
        values = ["" if v is None else v for v in values]
    joined = "".join(values)
    data = joined.encode()
    if len(data) == len(joined):
        # ASCII only: a string's length in characters is its length in bytes.
        return map(len, values), data
    encoded = [v.encode() for v in values]
    return map(len, encoded), b"".join(encoded)


def _variable(t, lengths, data, buffers):
    offsets = _array("q" if t.width == 8 else "i", _accumulate(lengths, initial=0))
    if t.width == 4 and offsets[-1] > 0x7FFFFFFF:
        raise ValueError("more than 2 GiB of values in one batch: send smaller batches")
    buffers.append(offsets.tobytes())
    buffers.append(data)


def _fixed(values, t, nulls):
    width = t.width
    if nulls:
        zero = bytes(width)
        values = [zero if v is None else v for v in values]
    try:
        data = b"".join(values)
    except TypeError:
        if t.kind != "uuid":
            raise
        values = [_uuid_bytes(v) for v in values]
        data = b"".join(values)
    if len(data) != width * len(values):
        bad = next(i for i, v in enumerate(values) if len(v) != width)
        raise ValueError("row %d holds %d bytes, not %d" % (bad, len(values[bad]), width))
    return data


def _uuid_bytes(value):
    if isinstance(value, _uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return _uuid.UUID(value).bytes
    return bytes(value)


def _timestamps(values, unit):
    """Integers pass as they are; datetimes become `unit`s since the epoch."""
    try:
        return _array("q", values)
    except TypeError:
        pass
    per_second = _PER_SECOND[unit]
    out = []
    for v in values:
        if isinstance(v, _dt.datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=_dt.timezone.utc)
            d = v - _EPOCH
            micros = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
            v = micros * per_second // 1_000_000
        elif not isinstance(v, int):
            raise TypeError("a timestamp is a datetime or an integer, not %s" % type(v).__name__)
        out.append(v)
    return out


def _dates(values):
    out = []
    for v in values:
        if isinstance(v, _dt.datetime):
            v = v.date()
        if isinstance(v, _dt.date):
            v = v.toordinal() - _EPOCH_ORDINAL
        elif not isinstance(v, int):
            raise TypeError("a date is a datetime.date or days since 1970, not %s"
                            % type(v).__name__)
        out.append(v)
    return out
