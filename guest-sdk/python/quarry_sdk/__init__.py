"""Write Quarry source plugins in Python.

A plugin is a subclass of `Plugin` that describes its tables and sends their rows; the component
model, the contract's calls and Arrow stay inside this package. The app module that
`componentize-py` builds names the plugin and re-exports the contract's classes:

    import quarry_sdk as q

    class Hello(q.Plugin):
        name = "hello"
        version = "0.1.0"
        description = "Says hello"
        spec_schema = {"type": "object", "properties": {"greeting": {"type": "string"}},
                       "additionalProperties": False}

        def tables(self):
            return [q.Table("greetings", [q.Column("text", q.utf8())])]

        def sync(self, tables, out):
            for table in tables:
                out.insert(table, [(self.spec.get("greeting", "hello"),)])

    q.export(Hello)
    from quarry_sdk.component import Plugin, Source  # noqa: E402,F401 (the component's exports)

Everything but `quarry_sdk.component` and `quarry_sdk.http` also imports in a plain Python, so a
plugin's logic can be unit-tested there with `run_sync`.
"""

import fnmatch as _fnmatch
import hashlib as _hashlib
import os as _os
import struct as _struct
import uuid as _uuid_module

from . import _host, arrow
from .arrow import (  # noqa: F401 (the types, re-exported)
    binary, boolean, date32, fixed_size_binary, float32, float64, inet, int8, int16, int32,
    int64, json, large_binary, large_utf8, list_, mac, timestamp, uint8, uint16, uint32, uint64,
    utf8, uuid,
)

__all__ = [
    "Column", "Error", "Needs", "Plugin", "SyncContext", "Table", "export", "log", "run_sync",
    "select_tables",
]

# The largest Arrow stream one `sink.emit` carries (the host copies at most 128 MiB per call).
MAX_EMIT_BYTES = 64 << 20
CQ_ID, CQ_PARENT_ID = "_cq_id", "_cq_parent_id"
_TRUE = "true"


class Error(Exception):
    """An error the host shows the user; its kind decides the exit code (see the contract)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def invalid_spec(cls, message):
        return cls("invalid-spec", message)

    @classmethod
    def unauthorized(cls, message):
        return cls("unauthorized", message)

    @classmethod
    def unavailable(cls, message):
        return cls("unavailable", message)

    @classmethod
    def not_supported(cls, message):
        return cls("not-supported", message)

    @classmethod
    def internal(cls, message):
        return cls("internal", message)


class Column:
    """A column: its name, Arrow type and CloudQuery's column options."""

    def __init__(self, name, data_type, primary_key=False, nullable=True, unique=False,
                 incremental=False, description="", type_schema=None):
        if not isinstance(data_type, arrow.DataType):
            raise TypeError("column `%s`: the type is %r; use quarry_sdk.int64(), utf8(), ..."
                            % (name, data_type))
        self.name = name
        self.type = data_type
        self.primary_key = primary_key
        self.nullable = nullable and not primary_key
        self.unique = unique
        self.incremental = incremental
        self.description = description
        self.type_schema = type_schema

    def field(self):
        meta = {}
        for key, on in (("cq:extension:primary_key", self.primary_key),
                        ("cq:extension:unique", self.unique),
                        ("cq:extension:incremental", self.incremental)):
            if on:
                meta[key] = _TRUE
        if self.description:
            meta["quarry:description"] = self.description
        if self.type_schema is not None:
            meta["cq:extension:type_schema"] = self.type_schema
        return arrow.Field(self.name, self.type, self.nullable, meta)


class Table:
    """A table: its name, columns, and (for a child table) its parent's name."""

    def __init__(self, name, columns, description="", title="", parent=None, incremental=False):
        self.name = name
        self.columns = list(columns)
        self.description = description
        self.title = title
        self.parent = parent
        self.incremental = incremental
        names = [c.name for c in self.columns]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError("table `%s` declares column `%s` twice" % (name, duplicate))

    @property
    def primary_keys(self):
        return [c.name for c in self.columns if c.primary_key]

    def with_id_columns(self):
        """The table as sent: `_cq_id` and `_cq_parent_id` first (replacing any declared)."""
        own = [c for c in self.columns if c.name not in (CQ_ID, CQ_PARENT_ID)]
        ids = [Column(CQ_ID, uuid(), nullable=False, unique=True, description="Unique id of the row",
                      primary_key=not any(c.primary_key for c in own)),
               Column(CQ_PARENT_ID, uuid(),
                      description="The `_cq_id` of the parent row, for a child table")]
        return Table(self.name, ids + own, self.description, self.title, self.parent,
                     self.incremental)

    def schema(self):
        meta = {"cq:table_name": self.name}
        for key, value in (("cq:table_description", self.description),
                           ("cq:table_title", self.title),
                           ("cq:table_depends_on", self.parent or "")):
            if value:
                meta[key] = value
        if self.incremental:
            meta["cq:extension:is_incremental"] = _TRUE
        return arrow.Schema([c.field() for c in self.columns], meta)


class Needs:
    """What the plugin asks the user to grant: `network` entries are grants (`host`, `host:port`,
    `*.domain`, or `spec:FIELD` for the host of the URL in that spec field); `files` names the
    spec fields that hold paths the plugin reads or writes, `env` the variables it reads."""

    def __init__(self, network=(), files=(), env=()):
        self.network, self.files, self.env = list(network), list(files), list(env)


class Plugin:
    """Subclass this. Set `name`, `version`, `description` (and `spec_schema`, a JSON Schema of
    the spec as a dict, and `needs`), and implement `tables` and `sync`."""

    name = "python-plugin"
    version = "0.0.0"
    description = ""
    spec_schema = True
    needs = Needs()

    def __init__(self, spec):
        """`spec` is the user's `spec:` as parsed JSON (a dict). Raise `Error.invalid_spec` for
        anything the JSON Schema cannot check."""
        self.spec = spec

    def test_connection(self):
        """Checks the plugin can reach what it reads; raise an `Error` if not."""

    def close(self):
        """Releases what the plugin holds."""

    def tables(self):
        """Every table the plugin can sync, as a list of `Table`s."""
        raise NotImplementedError

    def sync(self, tables, out):
        """Sends the rows of `tables` (the selected top-level tables) through `out`, a
        `SyncContext`. Child tables are filled by `resolve`."""
        raise NotImplementedError

    def resolve(self, table, parents):
        """The rows of child `table` for a batch of its parent's rows: yield
        `(index of the parent row, child row)`. `parents` is a list of dicts (with `_cq_id`)."""
        raise Error.internal("table `%s` is a child table, but the plugin does not implement "
                             "`resolve`" % table.name)


class _Prepared:
    __slots__ = ("table", "full", "schema", "keys")

    def __init__(self, table):
        self.table = table
        self.full = table.with_id_columns()
        self.schema = self.full.schema()
        self.keys = [(i, c) for i, c in enumerate(table.columns) if c.primary_key]


class SyncContext:
    """Where a source's rows go during `sync`."""

    def __init__(self, plugin, sink, deterministic_cq_id=False):
        self._plugin = plugin
        self._sink = sink
        self.deterministic_cq_id = deterministic_cq_id
        self._tables = {}
        self._children = {}

    def _prepare(self, tables):
        for table in tables:
            prepared = _Prepared(table)
            self._tables[table.name] = prepared
            self._sink.migrate(prepared.schema)
            if table.parent:
                if type(self._plugin).resolve is Plugin.resolve:
                    raise Error.internal(
                        "table `%s` is a child of `%s`, but the plugin has no `resolve` that "
                        "yields its rows" % (table.name, table.parent))
                self._children.setdefault(table.parent, []).append(table)

    def insert(self, table, rows):
        """Sends rows of `table`: a list of tuples in the table's column order, or of dicts by
        column name (a missing key is null). `_cq_id` and `_cq_parent_id` are filled in. Blocks
        while the host's pipeline is full; an `Error` here means the sync was cancelled."""
        prepared = self._prepared(table)
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        columns = _columns_of(prepared.table, rows)
        self._send(prepared, columns, len(rows), None)

    def insert_columns(self, table, columns):
        """Sends rows of `table` given column by column: a dict of column name to values (all
        the same length; a missing column is all null) or a list in the table's column order.
        The fastest way to send many rows."""
        prepared = self._prepared(table)
        names = [c.name for c in prepared.table.columns]
        if isinstance(columns, dict):
            if not set(names).issuperset(columns):
                raise _unknown_columns(prepared.table, set(columns) - set(names))
            rows = len(next(iter(columns.values()), ()))
            columns = [columns[n] if n in columns else [None] * rows for n in names]
        if len(columns) != len(names):
            raise Error.internal("table `%s` has %d columns, but %d were sent" % (
                table_name(table), len(names), len(columns)))
        rows = len(columns[0]) if columns else 0
        for name, values in zip(names, columns):
            if len(values) != rows:
                raise Error.internal("table `%s`: column `%s` has %d values, `%s` has %d" % (
                    table_name(table), name, len(values), names[0], rows))
        if rows:
            self._send(prepared, [v if isinstance(v, list) else list(v) for v in columns], rows,
                       None)

    def state_get(self, key):
        """The cursor `key` as the state backend holds it (None the first time)."""
        return self._sink.state_get(key)

    def state_set(self, key, value):
        """Moves the cursor `key`. It must describe only rows already inserted: the host saves it
        once every destination has made them durable."""
        self._sink.state_set(key, str(value))

    def _prepared(self, table):
        name = table_name(table)
        prepared = self._tables.get(name)
        if prepared is None:
            raise Error.internal("rows for table `%s`, which is not one of the tables being "
                                 "synced (%s)" % (name, ", ".join(self._tables) or "none"))
        return prepared

    def _send(self, prepared, columns, rows, parent_ids):
        ids = self._ids(prepared, columns, rows)
        full = [ids, parent_ids if parent_ids is not None else [None] * rows] + columns
        self._emit(prepared, full, rows)
        children = self._children.get(prepared.table.name)
        if children:
            names = [c.name for c in prepared.full.columns]
            parents = [dict(zip(names, row)) for row in zip(*full)]
            for child in children:
                self._resolve(child, parents, ids)

    def _emit(self, prepared, columns, rows):
        try:
            data = arrow.encode_batch(prepared.schema, columns, rows)
        except ValueError as e:
            raise Error.internal("table `%s`: %s" % (prepared.table.name, e)) from None
        if len(data) > MAX_EMIT_BYTES and rows > 1:
            half = rows // 2
            self._emit(prepared, [c[:half] for c in columns], half)
            self._emit(prepared, [c[half:] for c in columns], rows - half)
            return
        self._sink.insert(data)

    def _resolve(self, child, parents, parent_ids):
        rows, ids = [], []
        try:
            for index, row in self._plugin.resolve(child, parents):
                if not (type(index) is int and 0 <= index < len(parents)):
                    raise Error.internal("a child row names parent row %r, but the parent "
                                         "batch has rows 0 to %d" % (index, len(parents) - 1))
                ids.append(parent_ids[index])
                rows.append(row)
        except Error as e:
            raise Error(e.kind, "resolving table `%s`: %s" % (child.name, e.message)) from None
        if not rows:
            return
        try:
            columns = _columns_of(child, rows)
        except Error as e:
            raise Error.internal("resolving %s" % e.message) from None
        self._send(self._tables[child.name], columns, len(rows), ids)

    def _ids(self, prepared, columns, rows):
        if self.deterministic_cq_id and prepared.keys:
            try:
                return deterministic_ids(
                    [(c.name, c.type, columns[i]) for i, c in prepared.keys], rows)
            except (ValueError, Error) as e:
                raise Error(getattr(e, "kind", "internal"), "table `%s`: %s" % (
                    prepared.table.name, getattr(e, "message", e))) from None
        return random_ids(rows)


def _unknown_columns(table, unknown):
    return Error.internal("table `%s` has no column %s; its columns are %s" % (
        table.name, ", ".join("`%s`" % u for u in sorted(unknown)),
        ", ".join(c.name for c in table.columns)))


def _columns_of(table, rows):
    """Rows (tuples in column order, or dicts by column name) as one list per column."""
    names = [c.name for c in table.columns]
    known = set(names)
    width = len(names)
    tuples = []
    for row in rows:
        if isinstance(row, dict):
            if not known.issuperset(row):
                raise _unknown_columns(table, set(row) - known)
            row = [row.get(name) for name in names]
        elif len(row) != width:
            raise Error.internal("table `%s` has %d columns, but a row has %d values"
                                 % (table.name, width, len(row)))
        tuples.append(row)
    return [list(column) for column in zip(*tuples)]


def table_name(table):
    return table if isinstance(table, str) else table.name


_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VERSION_8 = bytes((b & 0x0F) | 0x80 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


def random_ids(rows):
    """`rows` random version-4 UUIDs, as 16-byte values."""
    data = bytearray(_os.urandom(16 * rows))
    data[6::16] = data[6::16].translate(_VERSION_4)
    data[8::16] = data[8::16].translate(_VARIANT)
    view = bytes(data)
    return [view[i:i + 16] for i in range(0, 16 * rows, 16)]


def _key_bytes(data_type, value):
    """A key value's canonical bytes, as the Rust SDK hashes them (so an id does not depend on
    the language of the plugin that derived it)."""
    kind = data_type.kind
    if kind == "int":
        return value.to_bytes(data_type.width, "little", signed=data_type.signed)
    if kind == "float":
        return _struct.pack("<f" if data_type.width == 4 else "<d", value)
    if kind == "bool":
        return b"\x01" if value else b"\x00"
    if kind in ("utf8", "text"):
        return value.encode()
    if kind in ("binary", "fixed"):
        return bytes(value)
    if kind == "json":
        return arrow._json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if kind == "uuid":
        return value.bytes if isinstance(value, _uuid_module.UUID) else (
            _uuid_module.UUID(value).bytes if isinstance(value, str) else bytes(value))
    if kind in ("timestamp", "date"):
        encoded = arrow._timestamps([value], data_type.unit) if kind == "timestamp" else \
            arrow._dates([value])
        return encoded[0].to_bytes(8 if kind == "timestamp" else 4, "little", signed=True)
    raise Error.invalid_spec("deterministic_cq_id: a primary key of type %r cannot derive an "
                             "id; turn deterministic_cq_id off for this source" % (data_type,))


def deterministic_ids(keys, rows):
    """Version-8 UUIDs from SHA-256 over each key's name and value, keys in name order."""
    keys = sorted(keys, key=lambda k: k[0])
    out = []
    for row in range(rows):
        digest = _hashlib.sha256()
        for name, data_type, values in keys:
            value = values[row]
            try:
                encoded = b"\xff" if value is None else b"\x00" + _key_bytes(data_type, value)
            except (TypeError, ValueError, AttributeError, OverflowError) as e:
                raise ValueError("column `%s` (%r): row %d: %s" % (name, data_type, row, e)) \
                    from None
            except Error as e:
                raise Error(e.kind, "column `%s`: %s" % (name, e.message)) from None
            encoded_name = name.encode()  # its length in bytes, as Rust's `str::len`
            digest.update(_struct.pack("<I", len(encoded_name)) + encoded_name)
            digest.update(_struct.pack("<I", len(encoded)) + encoded)
        raw = bytearray(digest.digest()[:16])
        raw[6] = _VERSION_8[raw[6]]
        raw[8] = _VARIANT[raw[8]]
        out.append(bytes(raw))
    return out


def _matches(pattern, name):
    """A glob over table names: `*` any run of characters, `?` one character."""
    return _fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))


def select_tables(all_tables, tables=("*",), skip_tables=(), skip_dependent_tables=False):
    """The tables the patterns select, in `all_tables`' order, as the host and the Rust SDK
    select them: a pattern that matches nothing is an error listing the tables, and child tables
    follow their parents unless `skip_dependent_tables`."""
    names = ", ".join(t.name for t in all_tables)
    for patterns in (tables, skip_tables):
        for pattern in patterns:
            if not any(_matches(pattern, t.name) for t in all_tables):
                raise Error.invalid_spec("table pattern `%s` matches no table; the tables are: %s"
                                         % (pattern, names))

    def skipped(t):
        return any(_matches(p, t.name) for p in skip_tables)

    selected = [t for t in all_tables if any(_matches(p, t.name) for p in tables) and not skipped(t)]
    if not skip_dependent_tables:
        grown = True
        while grown:
            grown = False
            chosen = {t.name for t in selected}
            for t in all_tables:
                if t.parent in chosen and t.name not in chosen and not skipped(t):
                    selected.append(t)
                    grown = True
    chosen = {t.name for t in selected}
    for t in selected:
        if t.parent and t.parent not in chosen:
            raise Error.invalid_spec(
                "table `%s` is a child of `%s`, which is not selected; select `%s` too, or add "
                "`%s` to `skip_tables`" % (t.name, t.parent, t.parent, t.name))
    return [t for t in all_tables if t.name in chosen]


def sync_into(plugin, sink, tables=("*",), skip_tables=(), skip_dependent_tables=False,
              deterministic_cq_id=False):
    """A sync as the host runs it: the selected tables' schemas, then `plugin.sync` over the
    top-level ones, each parent batch followed by its children's rows."""
    selected = select_tables(plugin.tables(), tables, skip_tables, skip_dependent_tables)
    out = SyncContext(plugin, sink, deterministic_cq_id)
    out._prepare(selected)
    plugin.sync([t for t in selected if not t.parent], out)


class MemorySink:
    """Collects what a sync sends, for unit tests: `messages` holds ("migrate", schema) and
    ("insert", arrow stream) pairs; `state` the cursors."""

    def __init__(self, state=None):
        self.messages = []
        self.state = dict(state or {})

    def migrate(self, schema):
        self.messages.append(("migrate", schema))

    def insert(self, data):
        self.messages.append(("insert", data))

    def state_get(self, key):
        return self.state.get(key)

    def state_set(self, key, value):
        self.state[key] = value


def run_sync(plugin, **options):
    """Runs a sync of `plugin` in plain Python, for unit tests; returns a `MemorySink`."""
    sink = MemorySink(options.pop("state", None))
    sync_into(plugin, sink, **options)
    return sink


_exported = None


def export(plugin_class):
    """Names the plugin class the component runs."""
    global _exported
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, Plugin)):
        raise TypeError("export() takes a subclass of quarry_sdk.Plugin, not %r" % (plugin_class,))
    _exported = plugin_class
    return plugin_class


def exported():
    if _exported is None:
        raise Error.internal("the app module never called quarry_sdk.export(YourPlugin)")
    return _exported


def log(level, message, **fields):
    """A structured log record, shown by the host with the plugin's name (`level`: trace, debug,
    info, warn, error). Outside a component it is printed."""
    _host.log(level, message, fields)
