"""Reading M3ViT checkpoints as they lie on disk, without executing anything from them.

Formats (see shared/spec/m3vit.md §5): a directory of rank shards ``0.pth, 1.pth, ...`` whose expert
tensors are concatenated along dim 0 in rank order; a single ``.pth``/``.pth.tar`` holding a dict
with ``state_dict`` (or ``model``); or a bare state dict. Keys may carry ``module.``.
"""
from __future__ import annotations

import collections
import pickle
import re
import types
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import torch

from .errors import CheckpointError

# Globals a checkpoint may name: torch's tensor rebuilders, OrderedDict, the numpy scalar/dtype
# globals that M3ViT's best_result holds, and the codec protocol 2 uses for bytes. Nothing else.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
for _name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"):
    _ALLOWED_GLOBALS[("torch", _name)] = getattr(torch, _name)


def _numpy_globals():
    import numpy as np
    import numpy.core.multiarray as multiarray

    return {
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }


_ALLOWED_GLOBALS.update(_numpy_globals())


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for a global outside the allow-list (it may carry code)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load '{module}.{name}': checkpoints may only contain tensors, "
                f"containers and numpy scalars") from None


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# What torch's loaders need of a pickle module: Unpickler, load, and __name__.
restricted_pickle = types.SimpleNamespace(__name__="edgemoe_restricted_pickle", Unpickler=_RestrictedUnpickler,
                                          load=_restricted_load)


def _torch_load_restricted(path: Path):
    """torch.load's own machinery (zip and legacy formats) with the restricted unpickler.

    torch.load itself cannot be used: torch 1.13 replaces any pickle_module with plain pickle
    unless weights_only=True (whose allow-list rejects M3ViT's numpy scalars), and it hands
    TorchScript archives to torch.jit.load, which runs their code.
    """
    serialization = torch.serialization
    with open(path, "rb") as f:
        if serialization._is_zipfile(f):
            with serialization._open_zipfile_reader(f) as archive:
                if serialization._is_torchscript_zip(archive):
                    raise UnsafeCheckpointError("it is a TorchScript archive (a program), not a checkpoint")
                return serialization._load(archive, "cpu", restricted_pickle, encoding="utf-8")
        return serialization._legacy_load(f, "cpu", restricted_pickle, encoding="utf-8")


def safe_torch_load(path: Path):
    """Load a torch.save file without executing anything from it; failures become CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    try:
        return _torch_load_restricted(path)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, TypeError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                              f"{type(exc).__name__}: {exc}") from None


_IGNORED_PREFIXES = ("tam_model",)  # train-only modules (M3ViT's TAM), never run at inference
_EXPERT_KEY = re.compile(r"\.mlp\.experts\.(htoh4|h4toh)\.(weight|bias)$")


def _state_dict_of(obj, path: Path) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} holds no state dict (expected a dict with 'state_dict' or 'model', "
                              f"or a bare state dict), got {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state dict key {key!r} is not a string")
        name = key[len("module."):] if key.startswith("module.") else key
        if name.startswith(_IGNORED_PREFIXES):
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state dict entry '{key}' is a {type(value).__name__}, not a tensor")
        out[name] = value
    return out


def _rank_files(directory: Path):
    files = sorted((p for p in directory.iterdir() if re.fullmatch(r"\d+\.pth", p.name)), key=lambda p: int(p.stem))
    if not files:
        raise CheckpointError(f"checkpoint directory {directory} holds no rank files (0.pth, 1.pth, ...)")
    ranks = [int(p.stem) for p in files]
    if ranks != list(range(len(ranks))):
        raise CheckpointError(f"checkpoint directory {directory} has rank files {ranks}; expected 0..{len(ranks) - 1}")
    return files


def load_state_dict(path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Returns (state dict with keys without 'module.', source file of each key)."""
    path = Path(path)
    if path.is_dir():
        files = _rank_files(path)
        state = _state_dict_of(safe_torch_load(files[0]), files[0])
        sources = {k: str(files[0]) for k in state}
        expert_keys = [k for k in state if _EXPERT_KEY.search(k)]
        shards = {k: [state[k]] for k in expert_keys}
        for f in files[1:]:
            part = _state_dict_of(safe_torch_load(f), f)
            for k in expert_keys:
                if k not in part:
                    raise CheckpointError(f"inconsistent shards: {f} lacks expert tensor '{k}' that {files[0]} has")
                if tuple(part[k].shape[1:]) != tuple(state[k].shape[1:]):
                    raise CheckpointError(
                        f"inconsistent shards: '{k}' is {tuple(part[k].shape)} in {f} but "
                        f"{tuple(state[k].shape)} in {files[0]} (only dim 0, the experts, may differ)")
                shards[k].append(part[k])
        if len(files) > 1:
            for k in expert_keys:
                state[k] = torch.cat(shards[k], dim=0)
                sources[k] = f"{path} (rank files 0..{len(files) - 1})"
        return state, sources
    state = _state_dict_of(safe_torch_load(path), path)
    return state, {k: str(path) for k in state}
