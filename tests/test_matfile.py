"""edgemoe.matfile, the bounded MAT-file reader the PASCAL labels go through: it reads what scipy's
savemat writes (compressed or not) as scipy's loadmat does, and refuses what would crash, exhaust or
hang a reader that trusts the file: deep nesting, declared sizes beyond the data, zlib bombs, v4 and
v7.3 files, classes a label never holds."""
import functools
import io
import struct
import zlib

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from edgemoe import data
from edgemoe.matfile import MAX_DEPTH, MatCell, MatStruct, read_mat


def _saved(variables, **kwargs) -> bytes:
    buffer = io.BytesIO()
    savemat(buffer, variables, **kwargs)
    return buffer.getvalue()


def _same(ours, theirs):
    """ours (edgemoe.matfile) against scipy's loadmat(squeeze_me=False) of the same variable."""
    if isinstance(ours, MatStruct):
        assert theirs.dtype.names == ours.fields and theirs.shape == ours.shape
        for item, record in zip(ours.items, theirs.ravel(order="F")):
            for name in ours.fields:
                _same(item[name], record[name])
    elif isinstance(ours, MatCell):
        assert theirs.shape == ours.shape
        for a, b in zip(ours.items, theirs.ravel(order="F")):
            _same(a, b)
    elif isinstance(ours, str):
        assert theirs.shape in ((1,), (1, 1)) or theirs.size == 1, theirs.shape
        assert str(theirs.ravel()[0]) == ours
    elif ours.dtype == bool:  # a logical array: scipy gives its uint8 storage
        assert theirs.dtype == np.uint8 and np.array_equal(ours, theirs.astype(bool))
    else:
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape and np.array_equal(ours, theirs)


@pytest.mark.parametrize("compressed", [False, True])
def test_reads_what_savemat_writes_as_loadmat_does(compressed):
    rng = np.random.default_rng(0)
    parts = np.zeros((1, 2), dtype=[("part_name", "O"), ("mask", "O")])
    parts[0, 0] = ("head", rng.integers(0, 2, (5, 7)).astype(np.uint8))
    parts[0, 1] = ("lfoot", np.zeros((5, 7), np.uint8))
    cell = np.empty((1, 3), dtype=object)
    cell[0, 0], cell[0, 1], cell[0, 2] = np.arange(4.0).reshape(2, 2), "text", np.zeros((0, 0))
    variables = {
        "LabelMap": rng.integers(0, 459, (9, 13)).astype(np.int32),
        "doubles": rng.normal(size=(3, 4)), "singles": rng.normal(size=(2, 2)).astype(np.float32),
        "bytes": rng.integers(0, 255, (4, 4)).astype(np.uint8), "wide": np.arange(6, dtype=np.uint64).reshape(2, 3),
        "flags": np.array([[True, False, True]]), "name": "2008_000001.jpg", "parts": parts, "cell": cell,
        "cube": np.arange(24, dtype=np.int16).reshape(2, 3, 4), "empty": np.zeros((0, 5)),
    }
    raw = _saved(variables, do_compression=compressed)
    ours, theirs = read_mat(raw), loadmat(io.BytesIO(raw))
    assert set(ours) == set(variables)
    for name in variables:
        _same(ours[name], theirs[name])


def _element(mtype: int, payload: bytes, order="<") -> bytes:
    return struct.pack(order + "II", mtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix_head(cls: int, dims, name: bytes, body_bytes: int, flags: int = 0, order="<") -> bytes:
    head = _element(6, struct.pack(order + "II", cls | flags, 0), order) \
        + _element(5, struct.pack(f"{order}{len(dims)}i", *dims), order) + _element(1, name, order)
    return struct.pack(order + "II", 14, len(head) + body_bytes) + head


def _matrix(cls: int, dims, name: bytes, body: bytes, flags: int = 0, order="<") -> bytes:
    return _matrix_head(cls, dims, name, len(body), flags, order) + body


def _file(*elements: bytes, order="<") -> bytes:
    header = b"MATLAB 5.0 MAT-file, edgemoe test".ljust(116, b" ") + b"\0" * 8 + struct.pack(order + "H", 0x0100)
    return header + (b"IM" if order == "<" else b"MI") + b"".join(elements)


def _nested_cells(depth: int, name=b"anno") -> bytes:
    """A cell holding a cell ... ``depth`` deep (built outside-in without copying the inside each time)."""
    inner = _matrix(6, (1, 1), b"", _element(9, struct.pack("<d", 1.0)))
    heads, size = [], len(inner)
    for level in range(depth):
        head = _matrix_head(1, (1, 1), name if level == depth - 1 else b"", size)
        heads.append(head)
        size += len(head)
    return _file(b"".join(reversed(heads)) + inner)


def test_deep_nesting_is_refused_without_recursing():
    assert isinstance(read_mat(_nested_cells(MAX_DEPTH - 1))["anno"], MatCell)
    with pytest.raises(ValueError, match=f"nest deeper than {MAX_DEPTH}"):
        read_mat(_nested_cells(MAX_DEPTH))
    with pytest.raises(ValueError, match=f"nest deeper than {MAX_DEPTH}"):
        read_mat(_nested_cells(10_000))  # scipy builds this, and numpy's deallocation of it overflows the stack


@functools.lru_cache(maxsize=None)
def _bomb(inflated_bytes: int) -> bytes:
    """A compressed variable that inflates to ``inflated_bytes`` (a double array declared to match)."""
    count = inflated_bytes // 8
    body = struct.pack("<II", 9, count * 8)
    head = _matrix_head(6, (count, 1), b"LabelMap", len(body) + count * 8)
    packer = zlib.compressobj(1)
    chunks = [packer.compress(head + body)]
    zeros = b"\0" * (1 << 20)
    for _ in range(count * 8 >> 20):
        chunks.append(packer.compress(zeros))
    chunks.append(packer.flush())
    stream = b"".join(chunks)
    return _file(struct.pack("<II", 15, len(stream)) + stream)


@pytest.mark.parametrize("make, match", [
    (lambda: _bomb(256 << 20), "inflates past 128 MiB"),  # 256 KB of zlib
    (lambda: _file(_matrix(6, (100_000, 100_000), b"LabelMap", _element(9, b"\0" * 64))), "declares"),
    (lambda: _file(_matrix(1, (1, 10**9), b"anno", b"")), "declares 1,000,000,000 cells"),
    (lambda: _file(_matrix(5, (3, 3), b"LabelMap", b"")), "a sparse array"),
    (lambda: _file(_matrix(3, (1, 1), b"anno", b"")), "a MATLAB object"),
    (lambda: _file(_matrix(6, (1, 1), b"LabelMap", _element(9, b"\0" * 8) * 2, flags=0x800)), "is complex"),
    (lambda: _file(struct.pack("<II", 15, 40) + b"\x78\x9c" + b"\xff" * 38), "compressed variable is corrupt"),
    (lambda: _file(struct.pack("<II", 14, 1 << 30)), "claims 1073741824 bytes"),
    (lambda: _file(b""), None),  # no variables: reads as an empty file
    (lambda: b"MATLAB 5.0 MAT-file", "shorter than the 128-byte header"),
    (lambda: _saved({"LabelMap": np.zeros((3, 3))}, format="4"), "not a level-5 MAT-file"),
    (lambda: b"MATLAB 7.3 MAT-file".ljust(600, b"\0"), "7.3"),
    (lambda: _file(_matrix(6, (2, 2), b"x", _element(9, b"\0" * 32)))[:-5], "cut short|claims"),
], ids=["zlib-bomb", "huge-dims", "huge-cell", "sparse", "object", "complex", "bad-zlib", "claims", "empty",
        "tiny", "v4", "v7.3", "truncated"])
def test_hostile_mat_files(make, match):
    raw = make()
    if match is None:
        assert read_mat(raw) == {}
        return
    with pytest.raises(ValueError, match=match):
        read_mat(raw)


def test_a_v4_file_with_huge_dimensions_is_refused_by_its_header():
    raw = bytearray(_saved({"LabelMap": np.zeros((3, 3))}, format="4"))
    struct.pack_into("<ii", raw, 4, 1 << 30, 1 << 30)  # mrows, ncols
    with pytest.raises(ValueError, match="not a level-5 MAT-file"):
        read_mat(bytes(raw))


def test_a_big_endian_file_reads_the_same():
    for order in "<>":
        values = _element(5, struct.pack(f"{order}6i", *range(6)), order)
        raw = _file(_matrix(6, (2, 3), b"LabelMap", values, order=order), order=order)
        np.testing.assert_array_equal(read_mat(raw)["LabelMap"], np.arange(6.0).reshape(2, 3, order="F"))


# --- through the dataset reader: the file is named --------------------------------------------------

def test_a_nested_human_parts_file_is_refused_by_name(tmp_path):
    from test_data import _pascal_folder

    _pascal_folder(tmp_path)
    path = tmp_path / "human_parts" / "2008_000001.mat"
    path.write_bytes(_nested_cells(10_000))
    with pytest.raises(ValueError, match=f"{path}: cannot read it as a PASCAL human-parts annotation .*nest deeper"):
        data.PascalContext(tmp_path, "val", (40, 60), ["human_parts"])[0]


def test_a_label_map_bomb_is_refused_by_name(tmp_path):
    from test_data import _pascal_folder

    _pascal_folder(tmp_path)
    path = tmp_path / "pascal-context" / "trainval" / "2008_000001.mat"
    path.write_bytes(_bomb(256 << 20))
    with pytest.raises(ValueError, match=f"{path}: cannot read it as a PASCAL-Context label map .*inflates past"):
        data.PascalContext(tmp_path, "val", (40, 60), ["edge"])[0]
