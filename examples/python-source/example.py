"""Quarry's example source plugin in Python.

- `test_rows`: the same rows as the `test` plugin's `test_rows` (every value a function of the
  row number), `num_rows` of them in batches of `batch_size`: the workload `quarry bench` times.
- `py_types`: one column of each type the Python SDK writes, three rows (extremes, nulls, text
  outside ASCII).
- `py_increments`: incremental; each sync sends the next `num_rows` rows after the cursor.
- `py_parents` and its child `py_children`: two children per parent.
- `py_lines`: the lines of the file `file` (granted with `permissions.files`).
- `py_http`: the objects of the JSON array at `url` (granted with `permissions.network`).
"""

import datetime
import uuid

import quarry_sdk as q

EPOCH_2024_US = 1_704_067_200_000_000
PAYLOAD = ('{"ref":"%011d","name":"name_%011d","score":"%03d","group":"g%02d","active":%d,'
           '"note":"lorem"}')
TAGS_A = ["a%d" % k for k in range(5)]
TAGS_B = ["b%d" % k for k in range(50)]
TAGS_C = ["c%d" % k for k in range(500)]
INCREMENTS = "py_increments"


def test_rows_table(name, incremental=False):
    return q.Table(name, [
        q.Column("id", q.int64(), primary_key=True, description="The row number"),
        q.Column("name", q.utf8(), description='"name_" and the row number in 11 digits'),
        q.Column("value", q.float64(), description="(id % 100003) / 7"),
        q.Column("flag", q.boolean(), description="id % 3 == 0"),
        q.Column("created_at", q.timestamp("us", "UTC"),
                 description="2024-01-01T00:00:00Z + id seconds + (id % 1000) microseconds"),
        q.Column("payload", q.utf8(), description="A 101-character JSON document"),
        q.Column("tags", q.list_(q.utf8()),
                 description='["a" + id % 5, "b" + id % 50, "c" + id % 500]'),
    ], description="Synthetic rows; every value is a function of the row number `id`",
        incremental=incremental)


def test_rows_columns(start, end):
    """Columns of rows `start..end`, as the `test` plugin computes them."""
    ids = range(start, end)
    return [
        list(ids),
        ["name_%011d" % i for i in ids],
        [(i % 100003) / 7 for i in ids],
        [i % 3 == 0 for i in ids],
        [EPOCH_2024_US + i * 1_000_000 + i % 1000 for i in ids],
        [PAYLOAD % (i, i, i % 1000, i % 97, i % 3 == 0) for i in ids],
        [[TAGS_A[i % 5], TAGS_B[i % 50], TAGS_C[i % 500]] for i in ids],
    ]


TYPES = q.Table("py_types", [
    q.Column("id", q.int64(), primary_key=True),
    q.Column("i8", q.int8()),
    q.Column("i16", q.int16()),
    q.Column("i32", q.int32()),
    q.Column("u8", q.uint8()),
    q.Column("u16", q.uint16()),
    q.Column("u32", q.uint32()),
    q.Column("u64", q.uint64()),
    q.Column("f32", q.float32()),
    q.Column("f64", q.float64()),
    q.Column("flag", q.boolean()),
    q.Column("text", q.utf8()),
    q.Column("blob", q.binary()),
    q.Column("uid", q.uuid()),
    q.Column("doc", q.json()),
    q.Column("day", q.date32()),
    q.Column("at", q.timestamp("us", "UTC")),
    q.Column("words", q.list_(q.utf8())),
    q.Column("numbers", q.list_(q.int64())),
], description="One column per type the Python SDK writes")

TYPE_ROWS = [
    (1, -128, -32768, -2147483648, 255, 65535, 4294967295, 2**63 + 5, 1.5, -2.25, True,
     "plain", b"\x00\x01\xff", uuid.UUID("12345678-1234-5678-9abc-def012345678"),
     {"a": [1, 2], "b": None}, datetime.date(2024, 2, 29),
     datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc),
     ["x", "y"], [1, None, 3]),
    (2,) + (None,) * 18,
    (3, 127, 32767, 2147483647, 0, 0, 0, 0, -0.5, 1e300, False, "héllo ☃ 𝄞", b"",
     "00000000-0000-0000-0000-000000000001", "text", datetime.date(1969, 12, 31),
     datetime.datetime(1969, 12, 31, 23, 59, 59), [], []),
]

PARENTS = q.Table("py_parents", [
    q.Column("id", q.int64(), primary_key=True),
    q.Column("name", q.utf8()),
])
CHILDREN = q.Table("py_children", [
    q.Column("parent_id", q.int64(), primary_key=True),
    q.Column("n", q.int64(), primary_key=True),
], parent="py_parents")

LINES = q.Table("py_lines", [
    q.Column("line", q.int64(), primary_key=True),
    q.Column("text", q.utf8()),
], description="The lines of the file `file`")

HTTP = q.Table("py_http", [
    q.Column("id", q.int64(), primary_key=True),
    q.Column("title", q.utf8()),
    q.Column("tags", q.json()),
], description="The objects of the JSON array at `url`")


class Example(q.Plugin):
    name = "python-example"
    version = "0.1.0"
    description = "Quarry's example source plugin in Python: synthetic rows, a file, an HTTP API"
    spec_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "num_rows": {"type": "integer", "minimum": 0, "default": 1000,
                         "description": "Rows of `test_rows` and of each `py_increments` sync"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000000,
                           "default": 10000, "description": "Rows per batch of `test_rows`"},
            "parents": {"type": "integer", "minimum": 0, "default": 3,
                        "description": "Rows of `py_parents`"},
            "file": {"type": "string",
                     "description": "A text file whose lines `py_lines` holds (grant its "
                                    "directory under `permissions.files`)"},
            "url": {"type": "string",
                    "description": "An http(s) URL answering a JSON array of objects with `id`, "
                                   "`title` and `tags`, for `py_http`"},
        },
    }
    needs = q.Needs(network=["spec:url"], files=["file"])

    def __init__(self, spec):
        super().__init__(spec)
        self.num_rows = spec.get("num_rows", 1000)
        self.batch_size = spec.get("batch_size", 10000)
        self.parents = spec.get("parents", 3)

    def tables(self):
        return [test_rows_table("test_rows"), TYPES,
                test_rows_table(INCREMENTS, incremental=True),
                PARENTS, CHILDREN, LINES, HTTP]

    def sync(self, tables, out):
        for table in tables:
            if table.name == "test_rows":
                for start in range(0, self.num_rows, self.batch_size):
                    end = min(start + self.batch_size, self.num_rows)
                    out.insert_columns(table, test_rows_columns(start, end))
            elif table.name == INCREMENTS:
                cursor = out.state_get(INCREMENTS)
                first = int(cursor) if cursor is not None else 0
                last = first + self.num_rows
                for start in range(first, last, self.batch_size):
                    end = min(start + self.batch_size, last)
                    out.insert_columns(table, test_rows_columns(start, end))
                    out.state_set(INCREMENTS, end)
            elif table.name == "py_types":
                out.insert(table, TYPE_ROWS)
            elif table.name == "py_parents":
                out.insert(table, [{"id": i, "name": "parent %d" % i} for i in range(self.parents)])
            elif table.name == "py_lines":
                self.sync_lines(table, out)
            elif table.name == "py_http":
                self.sync_http(table, out)

    def resolve(self, table, parents):
        for index, parent in enumerate(parents):
            for n in range(2):
                yield index, (parent["id"], n)

    def sync_lines(self, table, out):
        path = self.spec.get("file")
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise q.Error.unauthorized(
                "cannot read `file` %s: %s; grant its directory under `permissions.files`"
                % (path, e.strerror or e)) from None
        out.insert(table, list(enumerate(lines, start=1)))

    def sync_http(self, table, out):
        url = self.spec.get("url")
        if url is None:
            return
        # Imported here so the module also loads in a plain Python (the unit tests); the
        # component has it already (quarry_sdk.component imports it while the component is built).
        from quarry_sdk import http
        items = http.get(url, headers={"accept": "application/json"}).json()
        if not isinstance(items, list):
            raise q.Error.internal("%s answered %s, not a JSON array" % (url, type(items).__name__))
        out.insert(table, [{"id": item.get("id"), "title": item.get("title"),
                            "tags": item.get("tags")} for item in items])
