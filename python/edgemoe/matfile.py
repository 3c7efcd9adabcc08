"""A bounded reader of MATLAB level-5 MAT-files, for the two label files PASCAL ships: PASCAL-Context's
``LabelMap`` (a numeric 2-D array) and Pascal-Part's ``anno`` (a struct of structs of masks).

``scipy.io.loadmat`` trusts a file: a header may declare huge dimensions (MemoryError), a small zlib
stream may inflate to gigabytes, and cells nested 10,000 deep build numpy object arrays whose
deallocation overflows the C stack and kills the process. This reader is iterative over the file
and recursive only over array nesting, which it caps; it checks every declared size against the
bytes present before taking memory for it, inflates compressed variables with an output limit, and
reads only what labels are made of: numeric and logical arrays, character arrays, structs and cells.
Everything else (MAT v4 and v7.3 files, sparse, complex, objects, function handles) is refused.
Every problem is a ValueError saying what is wrong; the caller names the file.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

MAX_FILE_BYTES = 64 << 20      # a PASCAL label file is tens of KB; a Pascal-Part one up to a few MB
MAX_DECODED_BYTES = 128 << 20  # all arrays of one file, decoded (inflated and widened to their class)
MAX_DEPTH = 8                  # anno > objects > parts > mask is 4
MAX_ARRAYS = 100_000           # arrays in one file (a crowded Pascal-Part image has a few thousand)
MAX_FIELDS = 256

# data types (MAT-file format, table 1-1) -> numpy codes
_STORAGE = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED, _MI_UTF8, _MI_UTF16, _MI_UTF32 = 14, 15, 16, 17, 18
# array classes -> numpy dtypes of the decoded array
_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_CELL, _STRUCT, _OBJECT, _CHAR, _SPARSE = 1, 2, 3, 4, 5
_CLASS_NAMES = {_OBJECT: "a MATLAB object", _SPARSE: "a sparse array", 16: "a function handle", 17: "an opaque object"}


@dataclass
class MatStruct:
    """A struct array: ``items`` in MATLAB's (column-major) order, each a dict of its fields."""
    shape: Tuple[int, ...]
    fields: Tuple[str, ...]
    items: List[Dict[str, object]] = field(default_factory=list)


@dataclass
class MatCell:
    shape: Tuple[int, ...]
    items: List[object] = field(default_factory=list)


class _Reader:
    def __init__(self, order: str):
        self.order = order  # '<' or '>'
        self.arrays = 0
        self.decoded = 0

    def _spend(self, nbytes: int, what: str) -> None:
        self.decoded += nbytes
        if self.decoded > MAX_DECODED_BYTES:
            raise ValueError(f"{what} takes the file past {MAX_DECODED_BYTES >> 20} MiB of decoded arrays")

    def tag(self, buf: memoryview, pos: int, end: int) -> Tuple[int, memoryview, int]:
        """One data element at ``pos``: (type, payload, position after it, padding included)."""
        if pos + 8 > end:
            raise ValueError(f"a data element at byte {pos} is cut short")
        first, second = struct.unpack_from(self.order + "II", buf, pos)
        if first >> 16:  # small data element: 2-byte size, 2-byte type, up to 4 bytes inline
            mtype, nbytes = first & 0xFFFF, first >> 16
            if nbytes > 4:
                raise ValueError(f"a small data element at byte {pos} claims {nbytes} bytes (at most 4)")
            return mtype, buf[pos + 4:pos + 4 + nbytes], pos + 8
        mtype, nbytes = first, second
        if nbytes > end - pos - 8:
            raise ValueError(f"a data element at byte {pos} claims {nbytes} bytes, {end - pos - 8} remain")
        return mtype, buf[pos + 8:pos + 8 + nbytes], pos + 8 + (nbytes + 7) // 8 * 8

    def integers(self, payload: memoryview, mtype: int, what: str) -> np.ndarray:
        code = _STORAGE.get(mtype)
        if code not in ("i4", "u4", "i2", "u2", "i1", "u1") or len(payload) % np.dtype(code).itemsize:
            raise ValueError(f"{what} is stored as data type {mtype}, not as integers")
        return np.frombuffer(payload, self.order + code)

    def matrix(self, buf: memoryview, depth: int) -> Tuple[str, object]:
        """The array of one miMATRIX element's payload: (name, value)."""
        if depth > MAX_DEPTH:
            raise ValueError(f"arrays nest deeper than {MAX_DEPTH} levels (a label file needs 4)")
        self.arrays += 1
        if self.arrays > MAX_ARRAYS:
            raise ValueError(f"it holds more than {MAX_ARRAYS:,} arrays")
        end = len(buf)
        if end == 0:  # an empty cell or field: MATLAB writes a header-less element
            return "", np.zeros((0, 0))
        mtype, payload, pos = self.tag(buf, 0, end)
        if mtype != 6 or len(payload) != 8:
            raise ValueError("an array does not start with its 8-byte flags")
        flags = struct.unpack_from(self.order + "I", payload)[0]
        cls, complex_, logical = flags & 0xFF, bool(flags & 0x800), bool(flags & 0x200)
        mtype, payload, pos = self.tag(buf, pos, end)
        dims = tuple(int(d) for d in self.integers(payload, mtype, "an array's dimensions"))
        if not 2 <= len(dims) <= 8 or min(dims) < 0:
            raise ValueError(f"an array has dimensions {dims[:8]}")
        count = int(np.prod(dims, dtype=object))
        mtype, payload, pos = self.tag(buf, pos, end)
        name = bytes(payload).decode("ascii", "replace")
        if cls in _CLASS_NAMES:
            raise ValueError(f"{name or 'an array'} is {_CLASS_NAMES[cls]}, which a label file does not hold")
        if complex_:
            raise ValueError(f"{name or 'an array'} is complex; labels are real")
        if cls in _CLASSES:
            mtype, payload, pos = self.tag(buf, pos, end)
            code = _STORAGE.get(mtype)
            if code is None or len(payload) != count * np.dtype(code).itemsize:
                raise ValueError(f"{name or 'an array'} declares {dims} elements of data type {mtype}; "
                                 f"its data has {len(payload)} bytes")
            out_dtype = np.dtype(bool if logical else _CLASSES[cls])
            self._spend(count * out_dtype.itemsize, name or "an array")
            values = np.frombuffer(payload, self.order + code).astype(out_dtype)
            return name, values.reshape(dims, order="F")
        if cls == _CHAR:
            mtype, payload, pos = self.tag(buf, pos, end)
            self._spend(len(payload) * 4, name or "a string")
            if mtype in (_MI_UTF8, 1, 2):
                text = bytes(payload).decode("utf-8")
            elif mtype in (_MI_UTF16, 4, 3):
                text = bytes(payload).decode("utf-16-le" if self.order == "<" else "utf-16-be")
            else:
                raise ValueError(f"{name or 'a string'} is stored as data type {mtype}, not as characters")
            return name, text
        if cls in (_CELL, _STRUCT):
            if count > MAX_ARRAYS:
                raise ValueError(f"{name or 'an array'} declares {count:,} cells or struct elements")
            fields: Tuple[str, ...] = ()
            if cls == _STRUCT:
                mtype, payload, pos = self.tag(buf, pos, end)
                length = self.integers(payload, mtype, "a struct's field-name length")
                if length.size != 1 or not 1 <= int(length[0]) <= 64:
                    raise ValueError(f"{name or 'a struct'} has field names of length {length[:1].tolist()}")
                mtype, payload, pos = self.tag(buf, pos, end)
                width = int(length[0])
                raw = bytes(payload)
                if len(raw) % width or len(raw) // width > MAX_FIELDS:
                    raise ValueError(f"{name or 'a struct'} has {len(raw)} bytes of field names of {width} bytes each")
                fields = tuple(raw[k:k + width].split(b"\0", 1)[0].decode("ascii", "replace")
                               for k in range(0, len(raw), width))
            values = []
            for _ in range(count * (len(fields) if cls == _STRUCT else 1)):
                mtype, payload, pos = self.tag(buf, pos, end)
                if mtype != _MI_MATRIX:
                    raise ValueError(f"{name or 'an array'} holds a data element of type {mtype} where an array belongs")
                values.append(self.matrix(payload, depth + 1)[1])
            if cls == _CELL:
                return name, MatCell(dims, values)
            items = [dict(zip(fields, values[k * len(fields):(k + 1) * len(fields)])) for k in range(count)]
            return name, MatStruct(dims, fields, items)
        raise ValueError(f"{name or 'an array'} is of array class {cls}, which a label file does not hold")


def read_mat(data: bytes) -> Dict[str, object]:
    """The variables of a level-5 MAT-file's bytes, by name."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"it is {len(data) >> 20} MiB, more than the {MAX_FILE_BYTES >> 20} MiB a label file may have")
    if data[:19] == b"MATLAB 7.3 MAT-file" or data[512:520] == b"\x89HDF\r\n\x1a\n":
        raise ValueError("it is a MATLAB 7.3 (HDF5) file; save labels with -v7 or -v6")
    if not data.startswith(b"MATLAB"):
        raise ValueError("it is not a level-5 MAT-file (MATLAB 5.0 and later; version-4 files are not read)")
    if len(data) < 128:
        raise ValueError(f"it is not a MAT-file ({len(data)} bytes, shorter than the 128-byte header)")
    endian = data[126:128]
    if endian not in (b"IM", b"MI"):
        raise ValueError(f"its header has no byte-order mark (IM or MI), it has {bytes(endian)!r}")
    reader = _Reader("<" if endian == b"IM" else ">")
    version = struct.unpack_from(reader.order + "H", data, 124)[0]
    if version != 0x0100:
        raise ValueError(f"it is a MAT-file of version {version:#x}; 0x0100 is read")
    view = memoryview(data)
    variables: Dict[str, object] = {}
    pos = 128
    while pos < len(data):
        mtype, payload, _ = reader.tag(view, pos, len(data))
        pos += 8 + len(payload)  # top-level elements follow each other without padding
        if mtype == _MI_COMPRESSED:
            budget = MAX_DECODED_BYTES - reader.decoded
            inflater = zlib.decompressobj()
            try:
                inflated = inflater.decompress(bytes(payload), budget + 1)
            except zlib.error as exc:
                raise ValueError(f"a compressed variable is corrupt ({exc})") from None
            if len(inflated) > budget:
                raise ValueError(f"a compressed variable inflates past {MAX_DECODED_BYTES >> 20} MiB")
            reader._spend(len(inflated), "a compressed variable")
            inner = memoryview(inflated)
            mtype, payload, _ = reader.tag(inner, 0, len(inner))
        if mtype != _MI_MATRIX:
            raise ValueError(f"a top-level data element has type {mtype}, not an array")
        name, value = reader.matrix(payload, 1)
        variables[name] = value
    return variables
