"""The example plugin in plain Python: its `test_rows` are the `test` plugin's (the values that
plugin's own unit test checks for row 50,000), and every table syncs."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "guest-sdk", "python")]

import quarry_sdk as q  # noqa: E402
from example import Example, test_rows_columns  # noqa: E402


class TestRows(unittest.TestCase):
    def test_row_values_follow_the_test_plugins_formulas(self):
        cols = test_rows_columns(49_999, 50_001)
        self.assertEqual(cols[0][1], 50_000)
        self.assertEqual(cols[1][1], "name_00000050000")
        self.assertEqual(cols[2][1], 50_000 / 7)
        self.assertEqual(cols[3], [False, False])
        self.assertEqual(cols[4][1], 1_704_067_200_000_000 + 50_000 * 1_000_000)
        self.assertEqual(cols[5][1], '{"ref":"00000050000","name":"name_00000050000",'
                                     '"score":"000","group":"g45","active":0,"note":"lorem"}')
        self.assertEqual(len(cols[5][1]), 101)
        self.assertEqual(cols[6][0], ["a4", "b49", "c499"])
        self.assertTrue(test_rows_columns(3, 4)[3][0])

    def test_every_table_syncs_and_increments_move_the_cursor(self):
        sink = q.run_sync(Example({"num_rows": 25, "batch_size": 10}), state={})
        names = [m.metadata["cq:table_name"] for kind, m in sink.messages if kind == "migrate"]
        self.assertEqual(names, ["test_rows", "py_types", "py_increments", "py_parents",
                                 "py_children", "py_lines", "py_http"])
        self.assertEqual(sink.state, {"py_increments": "25"})
        again = q.run_sync(Example({"num_rows": 5}), state=sink.state, tables=["py_increments"])
        self.assertEqual(again.state, {"py_increments": "30"})


if __name__ == "__main__":
    unittest.main()
