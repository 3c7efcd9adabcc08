"""Reading M3ViT checkpoints as they lie on disk, without executing anything from them.

Formats (see shared/spec/m3vit.md §5): a directory of rank shards ``0.pth, 1.pth, ...`` whose expert
tensors are concatenated along dim 0 in rank order; a single ``.pth``/``.pth.tar`` holding a dict
with ``state_dict`` (or ``model``); or a bare state dict. Keys may carry ``module.``.

Both of torch's file formats (the zip archive and the legacy stream) are parsed here, not by torch:
torch 1.13's loaders trust the file (a storage's declared size is not compared with its record, a
declared size is allocated before it is read, and the legacy path checks "module" sources by writing
``.patch`` files). What a load guarantees:

* nothing from the file runs: the unpickler resolves only an allow-list of globals (tensor rebuilds,
  containers, numeric numpy scalars) to edgemoe's own checked versions, and sets state (BUILD) only
  on containers and numpy objects it created itself, never on a global;
* every storage is exactly as long as its record (zip) or its length prefix (legacy), every tensor
  lies inside its storage, and nothing is allocated beyond the file's own size;
* every failure is a :class:`CheckpointError` (or :class:`UnsafeCheckpointError`) naming the file.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import torch

from .errors import CheckpointError, UnsafeCheckpointError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001
_MAX_DIMS = 16
# The pickled structure of a checkpoint (keys, shapes, small numbers; tensor data lives elsewhere) is
# kilobytes; unpickling can hold ~16x its size in Python objects, so it is capped.
_MAX_PICKLE_BYTES = 32 << 20

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}


class _StorageType:
    """What a storage class name in the pickle resolves to: just its dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage read from the file: a flat tensor of `numel` elements."""

    def __init__(self, flat: torch.Tensor):
        self.flat = flat
        self.numel = flat.numel()


def _ascii(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


def _index(value, what: str) -> int:
    if type(value) is not int or value < 0:
        raise CheckpointError(f"{what} is {value!r}, expected a non-negative integer")
    return value


def _dims(value, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS:
        raise CheckpointError(f"tensor {what} is {value!r}, expected a tuple of at most {_MAX_DIMS} integers")
    return tuple(_index(v, f"tensor {what} entry") for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """A view of a storage read from the file, checked to lie inside it and to need no more memory."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor is rebuilt from a {type(storage).__name__}, not from a storage of the file")
    offset = _index(storage_offset, "tensor storage offset")
    size, stride = _dims(size, "size"), _dims(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointError(f"tensor size {size} and stride {stride} differ in rank")
    numel = math.prod(size)
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if numel else offset
    if numel > storage.numel or extent > storage.numel:
        raise CheckpointError(
            f"a tensor of size {size}, stride {stride} at offset {offset} needs {max(numel, extent)} elements "
            f"but its storage holds {storage.numel} (corrupt or crafted file)")
    return storage.flat.as_strided(size, stride, offset)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, torch.Tensor):
        raise CheckpointError(f"a parameter is rebuilt from a {type(data).__name__}, not a tensor")
    return data


def _codecs_encode(text, encoding="utf-8"):
    """Protocol 2 pickles bytes as _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("the file calls _codecs.encode with arguments pickle never writes")
    return text.encode("latin1")


def _numeric_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biufc":
        raise UnsafeCheckpointError(f"refusing numpy dtype {dtype!r}: only numeric numpy values may appear")
    return dtype


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafeCheckpointError(f"refusing numpy dtype built from {type(spec).__name__}")
    return _numeric_dtype(np.dtype(spec, bool(align), bool(copy)))


def _numpy_scalar(dtype, data=None):
    import numpy.core.multiarray as multiarray

    dtype = _numeric_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError(f"a numpy {dtype} scalar holds {type(data).__name__} data of the wrong length")
    return multiarray.scalar(dtype, data)


class _NdarrayName:
    """What the global numpy.ndarray resolves to: a name _numpy_reconstruct accepts, not the class
    (calling np.ndarray directly could view freed memory or allocate without bound)."""


_NDARRAY = _NdarrayName()


def _numpy_reconstruct(subtype, shape, typecode):
    import numpy.core.multiarray as multiarray

    if subtype is not _NDARRAY:
        raise UnsafeCheckpointError(f"refusing numpy array subtype {subtype!r:.60}")
    return multiarray._reconstruct(np.ndarray, (0,), b"b")


_ATOMIC_KEYS = (str, int, bytes, float, bool, type(None))


def _key(value):
    """Dict keys and set items must be atomic: hashing a deeply nested tuple recurses in C without a
    guard and overflows the stack."""
    if type(value) not in _ATOMIC_KEYS:
        raise CheckpointError(f"a dict key or set item is a {type(value).__name__}; checkpoints use str and int keys")
    return value


def _ordered_dict(items=()):
    out = collections.OrderedDict()
    for pair in items:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise CheckpointError("an OrderedDict is built from something other than (key, value) pairs")
        out[_key(pair[0])] = pair[1]
    return out


def _set(items=()):
    return set(_key(item) for item in items)


def _frozenset(items=()):
    return frozenset(_key(item) for item in items)


# Globals a checkpoint may name, each mapped to edgemoe's checked version. Nothing else resolves.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): _NDARRAY,
}
for _name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"):
    _ALLOWED_GLOBALS[("torch", _name)] = getattr(torch, _name)
_GLOBAL_OBJECTS = {id(v) for v in _ALLOWED_GLOBALS.values()}


class _SafeUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with its object-building opcodes restricted.

    REDUCE may call only the allow-listed functions; BUILD (state setting) is allowed once per object
    and only on an OrderedDict (its `_metadata`), numpy array or numpy dtype that this unpickler
    created; containers are filled only through their own opcodes on real lists, dicts and sets,
    with atomic keys; the class-instantiating and extension-registry opcodes (INST, OBJ, NEWOBJ,
    NEWOBJ_EX, EXT1/2/4) are refused: no torch or M3ViT pickle uses them."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, persistent_load: Callable = None):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load
        self._created = {}  # id -> object made by REDUCE here (kept alive so ids stay unique)
        self._built = set()  # ids of objects whose state BUILD has set

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"refusing to load '{module}.{name}': checkpoints may only contain tensors, "
                f"containers and numpy scalars") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError("a persistent id appears where the format has none")
        return self._persistent(pid)

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in _GLOBAL_OBJECTS or not callable(func) or not isinstance(args, tuple):
            raise UnsafeCheckpointError(f"refusing to call {type(func).__name__} {func!r:.60}")
        result = func(*args)
        self._created[id(result)] = result
        self.stack[-1] = result

    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if self._created.get(id(inst)) is not inst or id(inst) in _GLOBAL_OBJECTS or id(inst) in self._built:
            raise UnsafeCheckpointError(f"refusing to set state on {type(inst).__name__} {inst!r:.60}: "
                                        f"only once, on containers the file itself builds")
        self._built.add(id(inst))
        if type(inst) is collections.OrderedDict:
            if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
                state = state[0]
            if not isinstance(state, dict) or set(state) - {"_metadata"}:
                raise UnsafeCheckpointError("refusing state on an OrderedDict other than torch's _metadata")
            inst.__dict__.update(state)
        elif isinstance(inst, np.dtype):
            if state != inst.__reduce__()[2]:
                raise UnsafeCheckpointError(f"refusing to change numpy dtype {inst} through its state")
        elif type(inst) is np.ndarray:
            if not isinstance(state, tuple) or len(state) != 5 or not isinstance(state[2], np.dtype):
                raise CheckpointError("a numpy array has malformed state")
            _numeric_dtype(state[2])
            inst.__setstate__(state)
        else:
            raise UnsafeCheckpointError(f"refusing to set state on a {type(inst).__name__}")

    def _refuse_instantiation(self):
        raise UnsafeCheckpointError("refusing a pickle opcode that instantiates classes or reads the "
                                    "extension registry (INST/OBJ/NEWOBJ/EXT)")

    def _target(self, kind):
        target = self.stack[-1]
        if not isinstance(target, kind):
            raise CheckpointError(f"a pickle opcode fills a {type(target).__name__} as if it were a {kind.__name__}")
        return target

    def _load_setitem(self):
        value = self.stack.pop()
        key = _key(self.stack.pop())
        self._target(dict)[key] = value

    def _load_setitems(self):
        items = self.pop_mark()
        target = self._target(dict)
        for i in range(0, len(items) - 1, 2):
            target[_key(items[i])] = items[i + 1]

    def _load_dict(self):
        items = self.pop_mark()
        self.append({_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)})

    def _load_additems(self):
        items = self.pop_mark()
        self._target(set).update(_key(item) for item in items)

    def _load_frozenset(self):
        self.append(_frozenset(self.pop_mark()))

    def _load_append(self):
        value = self.stack.pop()
        self._target(list).append(value)

    def _load_appends(self):
        items = self.pop_mark()
        self._target(list).extend(items)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    for _op in (pickle.INST, pickle.OBJ, pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse_instantiation


def _storage_pid(pid, fields: int):
    if not isinstance(pid, tuple) or len(pid) != fields or _ascii(pid[0]) != "storage":
        if isinstance(pid, tuple) and pid and _ascii(pid[0]) == "module":
            raise UnsafeCheckpointError("the file pickles a whole torch.nn.Module (its class and source code); "
                                        "save model.state_dict() instead")
        raise CheckpointError(f"malformed storage reference {pid!r:.80}")
    if not isinstance(pid[1], _StorageType):
        raise CheckpointError(f"storage reference names {pid[1]!r:.60}, not a storage type")
    key = _ascii(pid[2])
    if type(key) is not str:
        raise CheckpointError(f"storage key is a {type(key).__name__}, not a string")
    return pid[1].dtype, key, _index(pid[4], "storage size")


def _element_size(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _load_zip(path: Path, file_size: int):
    with zipfile.ZipFile(path) as archive:
        records = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in records if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"the zip archive holds {len(pickles)} data.pkl records, expected one")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in records or any(n.startswith(prefix + "code/") for n in records):
            raise UnsafeCheckpointError("it is a TorchScript archive (a program), not a checkpoint")

        def record(name: str, expected_bytes=None) -> bytes:
            info = records.get(prefix + name)
            if info is None:
                raise CheckpointError(f"the archive has no record '{prefix + name}'")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise CheckpointError(f"record '{info.filename}' is compressed; torch.save never compresses")
            if info.file_size > file_size:
                raise CheckpointError(f"record '{info.filename}' claims {info.file_size} bytes, more than the file")
            if expected_bytes is not None and info.file_size != expected_bytes:
                raise CheckpointError(f"storage record '{info.filename}' holds {info.file_size} bytes but the "
                                      f"checkpoint declares {expected_bytes} (a shortened or swapped record)")
            return archive.read(info)  # checks the CRC

        storages: Dict[str, _Storage] = {}

        def persistent_load(pid):
            dtype, key, numel = _storage_pid(pid, 5)
            if key not in storages:
                data = record(f"data/{key}", numel * _element_size(dtype))
                storages[key] = _Storage(torch.frombuffer(bytearray(data), dtype=dtype) if numel
                                         else torch.empty(0, dtype=dtype))
            elif storages[key].flat.dtype != dtype or storages[key].numel != numel:
                raise CheckpointError(f"storage '{key}' is referenced with two different types or sizes")
            return storages[key]

        pkl = record("data.pkl")
        if len(pkl) > _MAX_PICKLE_BYTES:
            raise CheckpointError(f"data.pkl holds {len(pkl)} bytes; a checkpoint's structure fits in "
                                  f"{_MAX_PICKLE_BYTES} (its tensors are separate records)")
        return _SafeUnpickler(io.BytesIO(pkl), persistent_load).load()


def _load_legacy(path: Path, file_size: int):
    with open(path, "rb") as f:
        if _SafeUnpickler(f).load() != _LEGACY_MAGIC:
            raise CheckpointError("not a torch.save file (wrong magic number)")
        if _SafeUnpickler(f).load() != _LEGACY_PROTOCOL:
            raise CheckpointError("unsupported legacy torch.save protocol version")
        sys_info = _SafeUnpickler(f).load()
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise CheckpointError("the file was written on a big-endian machine or lacks its system info")
        storages: Dict[str, _Storage] = {}
        views: Dict[str, _Storage] = {}
        declared = [0]

        def persistent_load(pid):
            dtype, key, numel = _storage_pid(pid, 6)
            if key not in storages:
                declared[0] += numel * _element_size(dtype)
                if declared[0] > file_size:
                    raise CheckpointError(f"storages declare {declared[0]} bytes, more than the file's {file_size}")
                storages[key] = _Storage(torch.empty(numel, dtype=dtype))
            root = storages[key]
            if root.flat.dtype != dtype or root.numel != numel:
                raise CheckpointError(f"storage '{key}' is referenced with two different types or sizes")
            view = pid[5]
            if view is None:
                return root
            if not isinstance(view, tuple) or len(view) != 3:
                raise CheckpointError(f"malformed storage view {view!r:.80}")
            view_key, offset, count = _ascii(view[0]), _index(view[1], "view offset"), _index(view[2], "view size")
            if type(view_key) is not str:
                raise CheckpointError(f"storage view key is a {type(view_key).__name__}, not a string")
            if offset + count > root.numel:
                raise CheckpointError(f"storage view '{view_key}' reaches beyond its storage '{key}'")
            if view_key not in views:
                views[view_key] = _Storage(root.flat[offset:offset + count])
            return views[view_key]

        result = _SafeUnpickler(f, persistent_load).load()
        keys = _SafeUnpickler(f).load()
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
            raise CheckpointError("the list of stored storages does not match the storages the data references")
        for key in keys:
            storage = storages[key]
            header = f.read(8)
            if len(header) != 8 or struct.unpack("<q", header)[0] != storage.numel:
                raise CheckpointError(f"storage '{key}' is truncated or its length prefix disagrees with its size")
            nbytes = storage.numel * storage.flat.element_size()
            got = f.readinto(memoryview(storage.flat.view(torch.uint8).numpy())) if nbytes else 0
            if got != nbytes:
                raise CheckpointError(f"storage '{key}' is truncated ({got} of {nbytes} bytes)")
        return result


def safe_torch_load(path: Path):
    """Load a torch.save file without executing anything from it; failures become CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"  # torch's zip writer starts with a local file header
        return (_load_zip if is_zip else _load_legacy)(path, file_size)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (Exception, RecursionError) as exc:  # a parser failing on corrupt bytes, whatever it raises
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                              f"{type(exc).__name__}: {exc}"[:1000]) from None


_IGNORED_PREFIXES = ("tam_model",)  # train-only modules (M3ViT's TAM), never run at inference
_EXPERT_KEY = re.compile(r"^backbone\.blocks\.\d{1,4}\.mlp\.experts\.(htoh4|h4toh)\.(weight|bias)$")


def _state_dict_of(obj, path: Path) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} holds no state dict (expected a dict with 'state_dict' or 'model', "
                              f"or a bare state dict), got {type(obj).__name__}")
    out = {}
    for key, value in dict.items(obj):
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state dict key {key!r:.80} is not a string")
        name = key[len("module."):] if key.startswith("module.") else key
        if name.startswith(_IGNORED_PREFIXES):
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state dict entry '{key}' is a {type(value).__name__}, not a tensor")
        if name in out:
            raise CheckpointError(f"{path}: key '{name}' appears both with and without 'module.'")
        out[name] = value
    return out


def _rank_files(directory: Path):
    try:
        candidates = [p for p in directory.iterdir() if p.name.endswith(".pth")]
    except OSError as exc:
        raise CheckpointError(f"cannot list checkpoint directory {directory}: {exc}") from None
    files = sorted((p for p in candidates if re.fullmatch(r"(0|[1-9]\d{0,5})\.pth", p.name)), key=lambda p: int(p.stem))
    odd = sorted(p.name for p in candidates if p not in files)
    if odd:
        raise CheckpointError(f"checkpoint directory {directory} holds {odd}; rank files are named 0.pth, 1.pth, ...")
    if not files:
        raise CheckpointError(f"checkpoint directory {directory} holds no rank files (0.pth, 1.pth, ...)")
    ranks = [int(p.stem) for p in files]
    if ranks != list(range(len(ranks))):
        raise CheckpointError(f"checkpoint directory {directory} has rank files {ranks}; expected 0..{len(ranks) - 1}")
    return files


def load_state_dict(path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Returns (state dict with keys without 'module.', source file of each key).

    Tensors are views of what the file stores, in its dtype; nothing is converted here, except that
    the expert tensors of a rank-shard directory are concatenated (within the files' size)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        files = _rank_files(path)
        state = _state_dict_of(safe_torch_load(files[0]), files[0])
        sources = {k: str(files[0]) for k in state}
        expert_keys = [k for k in state if _EXPERT_KEY.search(k)]
        shards = {k: [state[k]] for k in expert_keys}
        for f in files[1:]:
            part = _state_dict_of(safe_torch_load(f), f)
            extra = sorted(k for k in part if k not in expert_keys)
            if extra:
                raise CheckpointError(
                    f"inconsistent shards: {f} holds '{extra[0]}'{f' and {len(extra) - 1} more keys' if len(extra) > 1 else ''}"
                    f", but rank files after 0.pth hold only expert tensors (a copy of 0.pth?)")
            for k in expert_keys:
                if k not in part:
                    raise CheckpointError(f"inconsistent shards: {f} lacks expert tensor '{k}' that {files[0]} has")
                if tuple(part[k].shape[1:]) != tuple(state[k].shape[1:]) or part[k].dtype != state[k].dtype:
                    raise CheckpointError(
                        f"inconsistent shards: '{k}' is {tuple(part[k].shape)} {part[k].dtype} in {f} but "
                        f"{tuple(state[k].shape)} {state[k].dtype} in {files[0]} (only dim 0, the experts, may differ)")
                shards[k].append(part[k])
        if len(files) > 1:
            # Concatenation makes new storage: bound it by the files, like every other allocation.
            budget = 2 * sum(f.stat().st_size for f in files)
            needed = sum(t.numel() * t.element_size() for k in expert_keys for t in shards[k])
            if needed > budget:
                raise CheckpointError(f"the expert tensors of {path} declare {needed} bytes, more than twice "
                                      f"its rank files hold (tensors aliasing one storage?)")
            for k in expert_keys:
                if any(t.dim() == 0 for t in shards[k]):
                    raise CheckpointError(f"expert tensor '{k}' is 0-dimensional in a rank file")
                state[k] = torch.cat(shards[k], dim=0)
                sources[k] = f"{path} (rank files 0..{len(files) - 1})"
        return state, sources
    state = _state_dict_of(safe_torch_load(path), path)
    return state, {k: str(path) for k in state}
