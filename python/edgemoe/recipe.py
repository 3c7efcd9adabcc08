"""What an ``edgemoe.Model`` pickles as: the recipe that rebuilt it, never the native object.

A recipe is the model's source (a checkpoint path with the SHA-256 of its files' bytes, or the
in-memory state dict it was built from), its ``ModelConfig``, its backend and that backend's options.
Unpickling rebuilds the model from it: on a Dask worker once per worker (``edgemoe.distributed``
caches it, on the worker's own device and threads), elsewhere each time. A checkpoint that is not
readable where the recipe is rebuilt, or whose bytes differ from those the model was loaded from, is
a ``CheckpointError`` naming the place (the worker's address) and the path.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from .errors import CheckpointError

_CHUNK = 1 << 20


def checkpoint_files(path) -> List[Path]:
    """The files a checkpoint path is read from: a rank-shard directory's rank files, else the file."""
    from .checkpoint import _rank_files

    path = Path(path)
    return list(_rank_files(path)) if path.is_dir() else [path]


def _file_stats(files) -> Tuple[Tuple[str, int, int], ...]:
    out = []
    for f in files:
        st = os.stat(f)
        out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _hash_files(files) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).name.encode() + b"\0")
        with open(f, "rb") as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
    return digest.hexdigest()


def _hash_weights(weights: Dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors a model was built from, as edgemoe.weights.select_weights hands them to the
    core (float32, contiguous, dense: whatever views or dtypes the caller's state dict held)."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        t = weights[key]
        digest.update(key.encode() + b"\0" + f"{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _where() -> str:
    from .distributed import current_worker_address

    address = current_worker_address()
    return f"worker {address}" if address else f"host {os.uname().nodename}"


@dataclass
class CheckpointSource:
    """A checkpoint on disk: its absolute path and the SHA-256 of its files' bytes (computed on the
    first pickle, from the files as they were when the model loaded them)."""
    path: str
    stats: Tuple[Tuple[str, int, int], ...] = ()
    digest: Optional[str] = None

    @classmethod
    def of(cls, path) -> "CheckpointSource":
        path = os.path.abspath(os.fspath(path))
        return cls(path, _file_stats(checkpoint_files(path)))

    @property
    def key(self) -> tuple:
        return ("checkpoint", self.path, self.sealed().digest)

    def check_unchanged(self) -> "CheckpointSource":
        """Self, or CheckpointError if the files changed since ``of`` (e.g. a trainer rewrote it during the load)."""
        try:
            now = _file_stats(checkpoint_files(self.path))
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.path}: cannot read it: {exc}") from None
        if now != self.stats:
            raise CheckpointError(f"checkpoint {self.path} changed on disk while it was being loaded; load it again")
        return self

    def sealed(self) -> "CheckpointSource":
        """With the digest of the files the model was loaded from; a CheckpointError if they changed since."""
        if self.digest is None:
            try:
                files = checkpoint_files(self.path)
                if _file_stats(files) != self.stats:
                    raise CheckpointError(f"checkpoint {self.path} changed on disk since the model was loaded from it; "
                                          f"load it again to pickle or distribute the model")
                self.digest = _hash_files(files)
            except OSError as exc:
                raise CheckpointError(f"checkpoint {self.path}: cannot read it to pickle the model: {exc}") from None
        return self

    def load(self):
        """(state, sources), checked against the digest; errors name where this runs and the path."""
        from .checkpoint import load_state_dict

        where = _where()
        try:
            files = checkpoint_files(self.path)
            before = _file_stats(files)
            digest = _hash_files(files)
        except (OSError, CheckpointError) as exc:
            raise CheckpointError(f"{where}: cannot read checkpoint {self.path} to rebuild the model: {exc} (every "
                                  f"worker must see the checkpoint at the same path, e.g. on a shared filesystem)") from None
        if self.digest is not None and digest != self.digest:
            raise CheckpointError(f"{where}: checkpoint {self.path} holds other bytes than the one the model was loaded "
                                  f"from (SHA-256 {digest[:12]}... here, {self.digest[:12]}... there)")
        try:
            loaded = load_state_dict(self.path)
            if _file_stats(files) != before:  # hashed one file, parsed another
                raise CheckpointError(f"checkpoint {self.path} changed on disk while it was being read")
            return loaded
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{where}: checkpoint {self.path}: {exc}") from None


@dataclass
class StateSource:
    """An in-memory state dict: pickled with the recipe (the caller's tensors, referenced, not copied),
    with the digest of the weights the model was built from."""
    state: Dict[str, torch.Tensor]
    config: object
    sources: Optional[Dict[str, str]] = None
    digest: str = ""

    @classmethod
    def of(cls, state, config, sources, weights) -> "StateSource":
        return cls(state, config, dict(sources) if sources else None, _hash_weights(weights))

    @property
    def key(self) -> tuple:
        return ("state", self.digest)

    def sealed(self) -> "StateSource":
        from .weights import select_weights

        if _hash_weights(select_weights(self.config, self.state, self.sources)) != self.digest:
            raise ValueError("the state dict this model was built from was changed in place since; build the model "
                             "again from it to pickle or distribute it")
        return self

    def load(self):
        return self.state, self.sources


@dataclass
class ModelRecipe:
    """Everything that rebuilds an edgemoe.Model: source, config, backend, options, threads (None: the
    default of the machine it is rebuilt on)."""
    source: object
    config: object
    backend: str
    options: Dict[str, object] = field(default_factory=dict)  # xclbin, device, timeout, heads as given
    num_threads: Optional[int] = None

    @property
    def key(self) -> tuple:
        """What identifies the model built: equal keys build equal models (the thread count aside)."""
        return (self.source.key, repr(self.config), self.backend, tuple(sorted(self.options.items())))

    def with_backend(self, backend: str, options: Dict[str, object]) -> "ModelRecipe":
        return replace(self, backend=backend, options=dict(options))

    def sealed(self) -> "ModelRecipe":
        """Self, its source sealed (edgemoe.Model.__reduce__ and the Dask path call this before a recipe
        leaves the process; unpickling then never re-reads or re-hashes anything on the receiving side)."""
        self.source.sealed()
        return self

    def build(self, num_threads: Optional[int] = None, device: Optional[int] = None):
        """A new Model from this recipe, with ``num_threads`` (default: the recipe's, if this machine has
        that many CPUs, else its default) and on XRT ``device`` (fpga; default: the recipe's)."""
        from .model import Model, _default_threads

        state, sources = self.source.load()
        options = {k: v for k, v in self.options.items() if v is not None}
        if device is not None and self.backend == "fpga":
            options["device"] = device
        if num_threads is None and self.num_threads is not None and self.num_threads <= (os.cpu_count() or 1):
            num_threads = self.num_threads
        try:
            return Model(self.config, state, self.backend, num_threads or _default_threads(), sources, **options,
                         _source=self.source)
        except CheckpointError:
            raise
        except ValueError as exc:
            if isinstance(self.source, CheckpointSource):
                raise type(exc)(f"{_where()}: rebuilding the model from {self.source.path}: {exc}") from None
            raise


def rebuild_model(recipe: ModelRecipe):
    """Unpickling an edgemoe.Model: on a Dask worker, the worker's cached build of the recipe; else a new build."""
    from .distributed import worker_model

    model = worker_model(recipe)
    if model is not None:
        return model
    model = recipe.build()
    model._recipe = recipe
    return model
