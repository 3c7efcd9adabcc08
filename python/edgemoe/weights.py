"""The tensors a model reads, checked and converted before any native code sees them.

A checkpoint may hold anything under any key; only the tensors the model's config requires (the
core's own list, ``_C.required_weights``) are checked (name, shape, dtype, finite values) and
converted to float32. Unused keys are never converted, so they cost no memory.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch

from . import _C
from .config import ModelConfig
from .errors import CheckpointError

# Each used element must be backed by at least this many bytes of distinct storage: float16 is the
# narrowest float a checkpoint stores. Tensors that alias one storage over and over (a crafted file
# making a small file inflate to gigabytes of float32) fail this.
_MIN_BYTES_PER_ELEMENT = 2


def _where(name: str, sources: Optional[Mapping[str, str]]) -> str:
    if not sources:
        return ""
    where = sources.get(name) or next(iter(sorted(set(sources.values()))), None)
    return f" (in {where})" if where else ""


def select_weights(config: ModelConfig, state: Mapping[str, torch.Tensor],
                   sources: Optional[Mapping[str, str]] = None) -> Dict[str, torch.Tensor]:
    """float32 contiguous copies of exactly the tensors ``config`` needs, or CheckpointError naming the key."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping of names to tensors, got {type(state).__name__}")
    out: Dict[str, torch.Tensor] = {}
    used = 0
    storages = {}
    required = _C.required_weights(config.to_native())
    for name, shape in required:
        if name not in state:
            raise CheckpointError(f"checkpoint has no key '{name}', which the model needs{_where(name, sources)}")
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"checkpoint key '{name}' is a {type(t).__name__}, not a tensor{_where(name, sources)}")
        if t.layout != torch.strided or t.is_quantized or t.device.type != "cpu":
            raise CheckpointError(f"checkpoint key '{name}' is a {t.layout} {t.device.type} tensor, "
                                  f"expected a dense CPU tensor{_where(name, sources)}")
        if tuple(t.shape) != tuple(shape):
            raise CheckpointError(f"checkpoint key '{name}' has shape {tuple(t.shape)}, expected {tuple(shape)}"
                                  f"{_where(name, sources)}")
        if not t.is_floating_point():
            raise CheckpointError(f"checkpoint key '{name}' has dtype {t.dtype}, expected a floating-point "
                                  f"tensor{_where(name, sources)}")
        used += t.numel()
        storage = t.storage()
        storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
    if used * _MIN_BYTES_PER_ELEMENT > sum(storages.values()):
        raise CheckpointError(f"the model's tensors declare {used} elements but share only {sum(storages.values())} "
                              f"bytes of storage (tensors aliasing one storage: a corrupt or crafted file)"
                              f"{_where('', sources)}")
    for name, _ in required:
        t = state[name].detach().resolve_conj().resolve_neg().to(torch.float32).contiguous()
        bad = t.numel() - int(torch.isfinite(t).sum())
        if bad:
            raise CheckpointError(f"checkpoint key '{name}' holds {bad} NaN or Inf values{_where(name, sources)}")
        out[name] = t
    return out
