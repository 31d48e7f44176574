"""A minimal FlatBuffers writer: just enough to encode Arrow's IPC messages.

FlatBuffers are built back to front: every object is prepended, and an offset is measured from
the end of the buffer, so a child is always written before the table that points at it. Each
value is aligned to its size relative to the buffer's end; `finish` pads the front so the whole
buffer's length is a multiple of the largest alignment used, which makes every value aligned
from the start as well (readers such as arrow-rs verify that).
"""

import struct

_U8 = struct.Struct("<B")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


class Builder:
    def __init__(self):
        self._data = bytearray()  # the tail of the finished buffer
        self._min_align = 1
        self._fields = None  # slot -> offset of the field, while a table is open
        self._table_start = 0

    def _offset(self):
        return len(self._data)

    def _prep(self, size, additional):
        """Pads so that after `additional` more bytes the end-relative offset is `size`-aligned."""
        self._min_align = max(self._min_align, size)
        pad = (-(len(self._data) + additional)) % size
        if pad:
            self._data[0:0] = bytes(pad)

    def _prepend(self, packer, value):
        self._prep(packer.size, 0)
        self._data[0:0] = packer.pack(value)

    def _prepend_uoffset(self, target):
        self._prep(4, 0)
        self._data[0:0] = _U32.pack(self._offset() + 4 - target)

    def string(self, text):
        data = text.encode("utf-8")
        self._prep(4, len(data) + 1)
        self._data[0:0] = _U32.pack(len(data)) + data + b"\0"
        return self._offset()

    def offsets(self, targets):
        """A vector of offsets to objects already written (tables, strings)."""
        self._prep(4, 4 * len(targets))
        for target in reversed(targets):
            self._prepend_uoffset(target)
        self._data[0:0] = _U32.pack(len(targets))
        return self._offset()

    def structs(self, packer, items, alignment):
        """A vector of structs, each `packer.pack(*item)` (`packer.size` bytes, `alignment`)."""
        self._prep(4, packer.size * len(items))
        self._prep(alignment, packer.size * len(items))
        self._data[0:0] = b"".join(packer.pack(*item) for item in items)
        self._data[0:0] = _U32.pack(len(items))
        return self._offset()

    def start(self, slots):
        assert self._fields is None, "FlatBuffers tables cannot nest: build children first"
        self._fields = [0] * slots
        self._table_start = self._offset()

    def _field(self, slot):
        self._fields[slot] = self._offset()

    def add_bool(self, slot, value):
        self._prepend(_U8, 1 if value else 0)
        self._field(slot)

    def add_u8(self, slot, value):
        self._prepend(_U8, value)
        self._field(slot)

    def add_i16(self, slot, value):
        self._prepend(_I16, value)
        self._field(slot)

    def add_i32(self, slot, value):
        self._prepend(_I32, value)
        self._field(slot)

    def add_i64(self, slot, value):
        self._prepend(_I64, value)
        self._field(slot)

    def add_offset(self, slot, target):
        self._prepend_uoffset(target)
        self._field(slot)

    def end(self):
        """Closes the table: its soffset to a vtable written just before it."""
        self._prepend(_I32, 0)
        table = self._offset()
        entries = [(table - at) if at else 0 for at in self._fields]
        vtable = [4 + 2 * len(entries), table - self._table_start] + entries
        self._data[0:0] = struct.pack("<%dH" % len(vtable), *vtable)
        # The vtable sits before the table: the table's soffset is the (positive) distance back.
        at = len(self._data) - table
        self._data[at : at + 4] = _I32.pack(self._offset() - table)
        self._fields = None
        return table

    def finish(self, root):
        self._prep(max(self._min_align, 4), 4)
        self._prepend_uoffset(root)
        return bytes(self._data)
