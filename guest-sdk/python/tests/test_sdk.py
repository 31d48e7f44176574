"""The Python SDK in plain Python: its Arrow streams read back with pyarrow (installed by
scripts/tools with CloudQuery's Python SDK), table selection, ids and relations.

Run: $QUARRY_TOOLS/venv/bin/python -m unittest discover -s guest-sdk/python/tests
(the e2e suite does, in `python::the_python_sdk_passes_its_unit_tests`).
"""

import datetime
import os
import sys
import unittest
import uuid

import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import quarry_sdk as q  # noqa: E402
from quarry_sdk import arrow  # noqa: E402

UTC = datetime.timezone.utc


def read(stream):
    table = ipc.open_stream(stream).read_all()
    table.validate(full=True)
    return table


def batches(sink, name):
    """The rows of table `name` a sync sent, as one pyarrow table."""
    tables = [read(m) for kind, m in sink.messages if kind == "insert"]
    tables = [t for t in tables if t.schema.metadata[b"cq:table_name"] == name.encode()]
    return pa.concat_tables(tables) if tables else None


class ArrowStreams(unittest.TestCase):
    def round_trip(self, data_type, values, expected=None):
        schema = arrow.Schema([arrow.Field("c", data_type)], {"cq:table_name": "t"})
        table = read(arrow.encode_batch(schema, [values], len(values)))
        self.assertEqual(table.column("c").to_pylist(), values if expected is None else expected)
        return table

    def test_every_type_reads_back_with_its_values_and_nulls(self):
        cases = [
            (q.int8(), [-128, None, 127]),
            (q.int16(), [-32768, 0, 32767]),
            (q.int32(), [-2**31, None, 2**31 - 1]),
            (q.int64(), [-2**63, None, 2**63 - 1]),
            (q.uint8(), [0, None, 255]),
            (q.uint16(), [0, 65535, None]),
            (q.uint32(), [0, 2**32 - 1, None]),
            (q.uint64(), [0, 2**64 - 1, None]),
            (q.float32(), [1.5, None, -0.25]),
            (q.float64(), [1e300, None, -2.5]),
            (q.boolean(), [True, False, None, True, True, False, False, True, True]),
            (q.utf8(), ["ascii", None, "héllo ☃ 𝄞", ""]),
            (q.large_utf8(), ["a", None, "é"]),
            (q.binary(), [b"\x00\xff", None, b""]),
            (q.large_binary(), [b"x", None]),
            (q.fixed_size_binary(3), [b"abc", None, b"\x00\x01\x02"]),
            (q.date32(), [datetime.date(2024, 2, 29), None, datetime.date(1969, 12, 31)]),
            (q.list_(q.utf8()), [["a", "b"], None, [], ["é", None]]),
            (q.list_(q.int64()), [[1, None, 3], [], None]),
            (q.list_(q.list_(q.int32())), [[[1], [2, 3]], None, [[]]]),
        ]
        for data_type, values in cases:
            with self.subTest(data_type):
                self.round_trip(data_type, values)

    def test_timestamps_take_datetimes_and_integers_in_their_unit(self):
        moment = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        naive = datetime.datetime(1969, 12, 31, 23, 59, 59)
        table = self.round_trip(q.timestamp("us", "UTC"), [moment, None, naive, 1],
                                [moment, None, naive.replace(tzinfo=UTC),
                                 datetime.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)])
        self.assertEqual(table.schema.field("c").type, pa.timestamp("us", tz="UTC"))
        table = self.round_trip(q.timestamp("s", None), [moment], [moment.replace(
            microsecond=0, tzinfo=None)])
        self.assertEqual(table.schema.field("c").type, pa.timestamp("s"))
        self.assertEqual(arrow._timestamps([moment], "ns")[0], 1704164645678901000)

    def test_extension_types_carry_cloudquerys_metadata(self):
        schema = arrow.Schema([arrow.Field("u", q.uuid()), arrow.Field("j", q.json()),
                               arrow.Field("i", q.inet()), arrow.Field("m", q.mac())])
        some = uuid.UUID("12345678-1234-5678-9abc-def012345678")
        table = read(arrow.encode_batch(schema, [
            [some, str(some), some.bytes, None],
            [{"a": [1, None]}, "text", None, 3],
            ["10.0.0.0/8", None, "::1", "192.168.0.1"],
            ["08:00:2b:01:02:03", None, None, None],
        ], 4))
        self.assertEqual(table.column("u").to_pylist(), [some.bytes] * 3 + [None])
        self.assertEqual(table.column("j").to_pylist(), [b'{"a":[1,null]}', b'"text"', None, b"3"])
        self.assertEqual(table.column("i").to_pylist()[2], b"::1")
        for name, ext in (("u", b"uuid"), ("j", b"json"), ("i", b"inet"), ("m", b"mac")):
            meta = table.schema.field(name).metadata
            self.assertEqual(meta[b"ARROW:extension:name"], ext)
            self.assertEqual(meta[b"ARROW:extension:metadata"], ext + b"-serialized")

    def test_bitmaps_of_every_length_match_arrows(self):
        for n in range(0, 70):
            flags = [(i * 7) % 3 == 0 for i in range(n)]
            expected = pa.array(flags, type=pa.bool_()).buffers()[1]
            expected = expected.to_pybytes()[:(n + 7) // 8] if expected else b""
            self.assertEqual(arrow.pack_bits(bytes(flags)), expected, n)

    def test_a_schema_stream_holds_the_tables_metadata(self):
        table = q.Table("t", [q.Column("id", q.int64(), primary_key=True, description="the id"),
                              q.Column("doc", q.json(), type_schema='{"a":"utf8"}')],
                        description="a table", parent="p", incremental=True)
        schema = ipc.open_stream(arrow.encode_schema(table.with_id_columns().schema())).schema
        self.assertEqual(schema.names, ["_cq_id", "_cq_parent_id", "id", "doc"])
        self.assertEqual(schema.metadata, {b"cq:table_name": b"t",
                                           b"cq:table_description": b"a table",
                                           b"cq:table_depends_on": b"p",
                                           b"cq:extension:is_incremental": b"true"})
        self.assertFalse(schema.field("id").nullable)
        self.assertEqual(schema.field("id").metadata[b"cq:extension:primary_key"], b"true")
        self.assertEqual(schema.field("id").metadata[b"quarry:description"], b"the id")
        self.assertEqual(schema.field("doc").metadata[b"cq:extension:type_schema"],
                         b'{"a":"utf8"}')
        # A table with a primary key keeps it; `_cq_id` is only unique.
        self.assertNotIn(b"cq:extension:primary_key", schema.field("_cq_id").metadata)

    def test_bad_values_name_the_column_and_row(self):
        schema = arrow.Schema([arrow.Field("n", q.int8()), arrow.Field("k", q.int64(), False)])
        with self.assertRaisesRegex(ValueError, "column `n` \\(int8\\)"):
            arrow.encode_batch(schema, [[1000], [1]], 1)
        with self.assertRaisesRegex(ValueError, "column `n` \\(int8\\)"):
            arrow.encode_batch(schema, [["one"], [1]], 1)
        with self.assertRaisesRegex(ValueError, "column `k`.*row 1 is null"):
            arrow.encode_batch(schema, [[1, 2], [1, None]], 2)
        uuids = arrow.Schema([arrow.Field("u", q.uuid())])
        with self.assertRaisesRegex(ValueError, "row 1 holds 3 bytes, not 16"):
            arrow.encode_batch(uuids, [[bytes(16), b"abc"]], 2)


class Family(q.Plugin):
    name = "family"

    def tables(self):
        return [
            q.Table("parents", [q.Column("id", q.int64(), primary_key=True),
                                q.Column("name", q.utf8())]),
            q.Table("children", [q.Column("parent", q.int64(), primary_key=True),
                                 q.Column("n", q.int64(), primary_key=True)], parent="parents"),
            q.Table("loose", [q.Column("x", q.int64())]),
        ]

    def sync(self, tables, out):
        for table in tables:
            if table.name == "parents":
                out.insert(table, [{"id": i, "name": "p%d" % i} for i in range(3)])
            else:
                out.insert_columns(table, {"x": [1, 2]})

    def resolve(self, table, parents):
        for index, parent in enumerate(parents):
            yield index, (parent["id"], 0)
            yield index, {"parent": parent["id"], "n": 1}


class Syncs(unittest.TestCase):
    def test_child_rows_point_at_their_parents_ids(self):
        sink = q.run_sync(Family({}))
        parents = batches(sink, "parents").to_pylist()
        children = batches(sink, "children").to_pylist()
        self.assertEqual(len(children), 6)
        by_id = {p["id"]: p["_cq_id"] for p in parents}
        for child in children:
            self.assertEqual(child["_cq_parent_id"], by_id[child["parent"]])
        self.assertTrue(all(p["_cq_parent_id"] is None for p in parents))
        self.assertEqual(len({c["_cq_id"] for c in children}), 6)
        for row in parents + children:
            self.assertEqual(uuid.UUID(bytes=row["_cq_id"]).version, 4)

    def test_deterministic_ids_follow_the_primary_key_and_match_the_rust_sdk(self):
        first = batches(q.run_sync(Family({}), deterministic_cq_id=True), "parents")
        second = batches(q.run_sync(Family({}), deterministic_cq_id=True), "parents")
        self.assertEqual(first.column("_cq_id"), second.column("_cq_id"))
        ids = [uuid.UUID(bytes=b) for b in first.column("_cq_id").to_pylist()]
        self.assertTrue(all(i.version == 8 for i in ids))
        # The same value `quarry_sdk::cq_id::deterministic_ids` derives for `id` = 1 (int64)
        # (guest-sdk/src/cq_id.rs, `an_id_from_one_int64_key_is_the_same_in_every_sdk`).
        self.assertEqual(str(ids[1]), RUST_ID_OF_INT64_KEY_1)
        # A key column named outside ASCII hashes its name's UTF-8 bytes, as Rust's `str::len`.
        self.assertEqual(q.deterministic_ids([("é", q.int32(), [7])], 1)[0].hex()[:8], "4131b48f")

    def test_selection_follows_patterns_and_parents(self):
        all_tables = Family({}).tables()
        names = lambda selected: [t.name for t in selected]  # noqa: E731
        self.assertEqual(names(q.select_tables(all_tables, ["parents"])), ["parents", "children"])
        self.assertEqual(names(q.select_tables(all_tables, ["parents"], [], True)), ["parents"])
        self.assertEqual(names(q.select_tables(all_tables, ["*"], ["child*"])),
                         ["parents", "loose"])
        self.assertEqual(names(q.select_tables(all_tables, ["?oose"])), ["loose"])
        with self.assertRaisesRegex(q.Error, "`nope` matches no table; the tables are: parents, "
                                             "children, loose"):
            q.select_tables(all_tables, ["nope"])
        with self.assertRaisesRegex(q.Error, "`children` is a child of `parents`"):
            q.select_tables(all_tables, ["children"])

    def test_rows_for_unknown_columns_or_tables_are_refused(self):
        class Bad(Family):
            def sync(self, tables, out):
                out.insert(tables[0], [{"id": 1, "nmae": "typo"}])
        with self.assertRaisesRegex(q.Error, "table `parents` has no column `nmae`"):
            q.run_sync(Bad({}))

        class Short(Family):
            def sync(self, tables, out):
                out.insert(tables[0], [(1,)])
        with self.assertRaisesRegex(q.Error, "table `parents` has 2 columns, but a row has 1"):
            q.run_sync(Short({}))

        class Elsewhere(Family):
            def sync(self, tables, out):
                out.insert("loose", [(1,)])
        with self.assertRaisesRegex(q.Error, "table `loose`, which is not one of the tables"):
            q.run_sync(Elsewhere({}), tables=["parents"])

    def test_child_rows_must_name_a_parent_row_of_the_batch(self):
        for index in (-1, 3, "0", 0.5):
            class Stray(Family):
                def resolve(self, table, parents, index=index):
                    yield index, (1, 0)
            with self.assertRaisesRegex(q.Error, "resolving table `children`: a child row "
                                                 "names parent row %r" % (index,)):
                q.run_sync(Stray({}))

        class Broken(Family):
            def resolve(self, table, parents):
                raise q.Error.unavailable("the API is down")
        with self.assertRaises(q.Error) as caught:
            q.run_sync(Broken({}))
        self.assertEqual((caught.exception.kind, caught.exception.message),
                         ("unavailable", "resolving table `children`: the API is down"))

        class Childless(Family):
            resolve = q.Plugin.resolve
        with self.assertRaisesRegex(q.Error, "`children` is a child of `parents`, but the "
                                             "plugin has no `resolve`"):
            q.run_sync(Childless({}))

    def test_a_batch_over_the_emit_limit_goes_as_several_in_order(self):
        class Big(Family):
            def sync(self, tables, out):
                out.insert_columns("loose", {"x": list(range(10000))})
        limit = q.MAX_EMIT_BYTES
        q.MAX_EMIT_BYTES = 20000
        try:
            sink = q.run_sync(Big({}), tables=["loose"])
        finally:
            q.MAX_EMIT_BYTES = limit
        inserts = [m for kind, m in sink.messages if kind == "insert"]
        self.assertGreater(len(inserts), 4)
        self.assertTrue(all(len(m) <= 20000 for m in inserts))
        self.assertEqual(batches(sink, "loose").column("x").to_pylist(), list(range(10000)))

    def test_state_starts_from_the_given_cursors(self):
        class Counter(Family):
            def sync(self, tables, out):
                out.state_set("n", int(out.state_get("n") or 0) + 1)
        self.assertEqual(q.run_sync(Counter({}), state={"n": "41"}).state, {"n": "42"})


RUST_ID_OF_INT64_KEY_1 = "81bac355-08aa-85ed-bc5c-4f9b2e3736cd"

if __name__ == "__main__":
    unittest.main()
