"""edgemoe.Model: an M3ViT checkpoint on one of the native backends."""
from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from typing import Dict, Iterable, Optional, Union

import torch

from . import _C
from .checkpoint import load_state_dict
from .config import ModelConfig, check_image_size, check_int, checkpoint_config
from .errors import CheckpointError, InputRangeWarning
from .boards import warn_if_no_board_fits
from .info import require_backend
from .recipe import CheckpointSource, ModelRecipe, StateSource, rebuild_model
from .weights import select_weights


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_threads(value) -> int:
    """1 .. the CPUs of this machine: more threads than CPUs only slows OpenMP down, so it is refused."""
    n = check_int(value, "num_threads")
    limit = os.cpu_count() or 1
    if n > limit:
        raise ValueError(f"num_threads must be between 1 and the {limit} CPUs of this machine, got {n}")
    return n


# Options of backends that drive a device: fpga only; of the accelerator's backends: emu and fpga.
_DEVICE_BACKENDS = ("fpga",)
_ACCELERATOR_BACKENDS = ("emu", "fpga")
HEADS = ("device", "host")
PRECISIONS = ("fp32", "bf16")
_PRECISION_BACKENDS = ("cpu",)


def _precision_option(backend: str, precision) -> dict:
    """precision="bf16" (cpu only): GEMMs, convolutions and attention products on bf16 inputs with fp32 sums;
    refused, naming what is missing, on a CPU without AVX-512 BF16 or AMX (never a silent fp32 run)."""
    if precision is None:
        return {}
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str ('fp32' or 'bf16'), got {type(precision).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32' (the default) or 'bf16', got {precision!r:.40}")
    if precision == "fp32":
        return {}
    if backend not in _PRECISION_BACKENDS:
        raise ValueError(f"precision='bf16': only backend='cpu' has a bf16 path (emu and fpga compute in the "
                         f"accelerator's fixed-point formats), not backend={backend!r}")
    support = _C.bf16_support()
    if not support["available"]:
        raise ValueError(f"precision='bf16' is unavailable: {support['reason']}")
    return {"precision": "bf16"}


def _heads_option(backend: str, heads) -> dict:
    if heads is None:
        return {}
    if not isinstance(heads, str):
        raise TypeError(f"heads must be a str ('device' or 'host'), got {type(heads).__name__}")
    if heads not in HEADS:
        raise ValueError(f"heads must be 'device' (the task heads on the accelerator, the default) or 'host' "
                         f"(on the CPU backend), got {heads!r:.40}")
    if backend not in _ACCELERATOR_BACKENDS:
        raise ValueError(f"heads: only the accelerator's backends (emu, fpga) take this option, not backend={backend!r}")
    return {"heads": heads}


def _backend_options(backend: str, xclbin=None, device=None, timeout=None, heads=None, precision=None) -> dict:
    """The native backend options, checked: which backend takes them, types, ranges, the file's presence.

    ``xclbin`` defaults to the ``EDGEMOE_XCLBIN`` environment variable; ``device`` (XRT device 0)
    and ``timeout`` (seconds per kernel run, 300) default in the core (csrc/core/backend.h);
    ``heads`` ("device", the default, or "host") is where emu and fpga run the task heads.
    """
    head_option = {**_heads_option(backend, heads), **_precision_option(backend, precision)}
    given = [name for name, value in (("xclbin", xclbin), ("device", device), ("timeout", timeout)) if value is not None]
    if backend not in _DEVICE_BACKENDS:
        if given:
            raise ValueError(f"{', '.join(given)}: only backend='fpga' takes {'these options' if len(given) > 1 else 'this option'}, "
                             f"not backend={backend!r}")
        return head_option
    if xclbin is None:
        xclbin = os.environ.get("EDGEMOE_XCLBIN") or None
        if xclbin is None:
            raise ValueError("backend='fpga' needs xclbin='.../m3vit_backbone.hw.xclbin' (built with kernels/vitis) "
                             "or the EDGEMOE_XCLBIN environment variable")
    if not isinstance(xclbin, (str, os.PathLike)):
        raise TypeError(f"xclbin must be a str or os.PathLike, got {type(xclbin).__name__}")
    path = os.fspath(xclbin)
    if not isinstance(path, str):
        raise TypeError("xclbin must be a str path, not bytes")
    if not os.path.exists(path):
        raise ValueError(f"xclbin: no such file {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"xclbin {path!r} is not a regular file (a directory, FIFO, socket or device)")
    options = {"xclbin": os.fsencode(os.path.abspath(path)), **head_option}  # bytes: any file name the OS allows
    if device is not None:
        options["device"] = check_int(device, "device", minimum=0)
        if options["device"] > 2 ** 31 - 1:
            raise ValueError(f"device must be an XRT device index (< 2^31), got {device}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        try:
            seconds = float(timeout)
        except OverflowError:
            seconds = math.inf
        if not (math.isfinite(seconds) and 0 < seconds <= 86400):
            raise ValueError(f"timeout must be in (0, 86400] seconds, got {timeout!r:.40}")
        options["timeout"] = seconds
    return options


def _forget_worker_model(model) -> None:
    """A model a Dask worker cached for its recipe is about to change: the cache must not hand it out."""
    if getattr(model, "_worker_cache_key", None) is not None:
        from .distributed import forget_worker_model

        forget_worker_model(model)


def _checkpoint_source(path) -> Optional[CheckpointSource]:
    try:
        return CheckpointSource.of(path)
    except (OSError, CheckpointError):  # load_state_dict says what is wrong with the path
        return None


def _given_options(options: dict, device, timeout, heads) -> dict:
    """The backend options a recipe records: as the caller gave them, with the xclbin as the absolute path
    the checked ``options`` resolved (a str _backend_options takes again) and the precision they hold."""
    given = {"xclbin": os.fsdecode(options["xclbin"]) if "xclbin" in options else None, "device": device,
             "timeout": timeout, "heads": heads, "precision": options.get("precision")}
    return {k: v for k, v in given.items() if v is not None}


class Model:
    """Run M3ViT's task-gated forward pass on a native backend: "cpu", "emu" or "fpga".

    ``model(images, task="semseg")`` returns the raw head output [B, C, H, W];
    ``model(images, tasks=[...])`` returns a dict, sharing the work before the first MoE layer.
    The fpga backend takes ``xclbin=`` (default: ``$EDGEMOE_XCLBIN``), ``device=`` (XRT index, 0)
    and ``timeout=`` (seconds per kernel run, 300). emu and fpga take ``heads=``: "device" (default:
    the task heads run on the accelerator, in the backbone's kernel call) or "host" (on the CPU).
    cpu takes ``precision=``: "fp32" (default) or "bf16" (GEMMs, convolutions and attention products on
    bf16 inputs with fp32 sums; LayerNorm, softmax, gates and residuals in fp32; AVX-512 BF16 or AMX).
    """

    def __init__(self, config: ModelConfig, state: Dict[str, torch.Tensor], backend: str = "cpu",
                 num_threads: Optional[int] = None, sources: Optional[Dict[str, str]] = None, *,
                 xclbin=None, device: Optional[int] = None, timeout: Optional[float] = None,
                 heads: Optional[str] = None, precision: Optional[str] = None, _source=None):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be an edgemoe.ModelConfig, got {type(config).__name__}")
        self._config = config
        require_backend(backend)
        options = _backend_options(backend, xclbin, device, timeout, heads, precision)
        threads = _default_threads() if num_threads is None else _check_threads(num_threads)
        weights = select_weights(config, state, sources)
        try:
            self._native = _C.Model(config.to_native(), weights, backend, threads, options)
        except ValueError as exc:
            raise _with_source(exc, sources) from None
        self._recipe = ModelRecipe(_source or StateSource.of(state, config, sources, weights), config, backend,
                                   _given_options(options, device, timeout, heads), num_threads)
        warn_if_no_board_fits(self)

    def __reduce__(self):
        """Pickled as its recipe (edgemoe.recipe): source, config, backend, options; never the native model."""
        return rebuild_model, (self._recipe.sealed(),)

    @classmethod
    def from_checkpoint(cls, path, backend: str = "cpu", *, top_k: Optional[int] = None,
                        num_heads: Optional[int] = None, image_size=None, config=None,
                        num_threads: Optional[int] = None, xclbin=None, device: Optional[int] = None,
                        timeout: Optional[float] = None, heads: Optional[str] = None,
                        precision: Optional[str] = None) -> "Model":
        """Load an M3ViT checkpoint as saved: a rank-shard directory, a .pth/.pth.tar file, or a bare state dict.

        What the weights cannot tell (heads, top-k, the image size of a non-square grid) comes from, in
        order: ``top_k``, ``num_heads``, ``image_size`` (H, W); ``config``, an M3ViT YAML config file
        (default: the ``config.yml`` or single YAML file next to the checkpoint, as in M3ViT's run
        directories; ``config=False`` looks for none); M3ViT's README defaults, with a ConfigWarning.
        ``print(model.config)`` shows where each value came from.
        ``xclbin``, ``device`` and ``timeout`` are the fpga backend's options, ``heads`` emu's and fpga's,
        ``precision`` ("fp32" or "bf16") cpu's (see Model).
        """
        # Arguments first: what fails after this is the checkpoint's fault and says so.
        for name, value in (("path", path), ("config", config)):
            if not isinstance(value, (str, os.PathLike)) and not (name == "config" and (value is None or value is False)):
                raise TypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
        if top_k is not None:
            check_int(top_k, "top_k")
        if num_heads is not None:
            check_int(num_heads, "num_heads")
        if image_size is not None:
            check_image_size(image_size)
        if num_threads is not None:
            _check_threads(num_threads)
        require_backend(backend)
        _backend_options(backend, xclbin, device, timeout, heads, precision)
        try:
            source = _checkpoint_source(path)  # before reading: a file replaced during the load is then seen
            state, sources = load_state_dict(path)  # the errors for a missing or unreadable path
            source = source.check_unchanged() if source else CheckpointSource.of(path)
            cfg = checkpoint_config(state, path, top_k=top_k, num_heads=num_heads, image_size=image_size, config=config)
        except CheckpointError:
            raise
        except ValueError as exc:
            if str(exc).startswith("config file "):
                raise
            raise CheckpointError(f"{path}: {exc}") from None
        try:
            return cls(cfg, state, backend, num_threads, sources, xclbin=xclbin, device=device, timeout=timeout,
                       heads=heads, precision=precision, _source=source)
        except CheckpointError:
            raise
        except ValueError as exc:
            # The xclbin's fault, or the accelerator build's limits: not the checkpoint's.
            if str(exc).startswith(("xclbin", "the accelerator cannot run this model")):
                raise
            raise CheckpointError(f"{path}: {exc}") from None

    @classmethod
    def pretrained(cls, backend: str = "cpu", **options) -> "Model":
        """The built-in model: a small M3ViT (width 96, 6 blocks, 3 MoE layers of 8 experts, top-2, 3 heads,
        128 x 256 input, six tasks) trained on edgemoe's synthetic scenes, loaded with its config.
        ``options`` are from_checkpoint's (num_threads, xclbin, ...)."""
        from .data import trained_checkpoint

        return cls.from_checkpoint(trained_checkpoint(), backend, **options)

    @property
    def config(self) -> ModelConfig:
        return self._config

    @property
    def tasks(self):
        return list(self._config.task_names)

    @property
    def backend(self) -> str:
        return self._native.backend

    @property
    def precision(self) -> str:
        """"fp32", or "bf16" (cpu with precision="bf16")."""
        return self._recipe.options.get("precision") or "fp32"

    @property
    def num_threads(self) -> int:
        return self._native.num_threads

    @num_threads.setter
    def num_threads(self, value: int):
        n = _check_threads(value)
        _forget_worker_model(self)
        self._native.num_threads = self._recipe.num_threads = n

    def to(self, backend: str, *, xclbin=None, device: Optional[int] = None,
           timeout: Optional[float] = None, heads: Optional[str] = None,
           precision: Optional[str] = None) -> "Model":
        """Move to another backend in place (weights are re-packed for it); returns self. On failure the
        model stays on its current backend. fpga and heads options as in Model."""
        require_backend(backend)
        options = _backend_options(backend, xclbin, device, timeout, heads, precision)
        _forget_worker_model(self)
        self._native.to(backend, options)
        self._recipe = self._recipe.with_backend(backend, _given_options(options, device, timeout, heads))
        warn_if_no_board_fits(self)
        return self

    def _task_id(self, task: str) -> int:
        if not isinstance(task, str) or task not in self._config.task_names:
            raise ValueError(f"unknown task {task!r}; this model has tasks {self.tasks}")
        return self._config.gate_index(task)

    def _check_images(self, images) -> torch.Tensor:
        H, W = self._config.image_size
        if not isinstance(images, torch.Tensor):
            # A photo, a path or raw pixels: the usual first call; preprocess is the step that was skipped.
            raise TypeError(f"images must be a torch.Tensor [B, 3, {H}, {W}], got {type(images).__name__}; for a PIL "
                            f"image, a file path or a uint8 array use edgemoe.preprocess(image, "
                            f"model.config.image_size)")
        if images.layout != torch.strided or images.is_quantized:
            raise ValueError(f"images must be a dense (strided) tensor, got layout {images.layout}")
        if images.device.type != "cpu":
            raise ValueError(f"images must be on the CPU, got device {images.device}")
        if images.dtype != torch.float32:
            hint = "; for uint8 pixels use edgemoe.preprocess(image, model.config.image_size)" \
                if images.dtype == torch.uint8 else ""
            raise ValueError(f"images must be float32 (normalised), got {images.dtype}{hint}")
        if images.dim() != 4:
            hint = " (one image: images[None] adds the batch dimension)" if images.dim() == 3 else ""
            raise ValueError(f"images must be 4-D [B, 3, {H}, {W}], got {images.dim()}-D shape "
                             f"{tuple(images.shape)}{hint}")
        if images.shape[1] != 3 or tuple(images.shape[2:]) != (H, W):
            raise ValueError(f"images must have shape [B, 3, {H}, {W}] (the checkpoint's pos_embed fixes the size), "
                             f"got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("images holds no image (batch size 0)")
        images = images.detach().resolve_conj().resolve_neg().contiguous()
        bad = _C.count_non_finite(images)
        if bad:
            raise ValueError(f"images contain {bad} NaN or Inf values")
        return images

    def _refuse_overflow(self, named_tensors) -> None:
        """ValueError at the first float32 tensor holding NaN/Inf: the input overflowed inside the network."""
        for name, value in named_tensors:
            if _C.count_non_finite(value.contiguous()):
                at = f" at {name}" if name else ""
                raise ValueError(f"images: the forward pass overflowed float32{at} (non-finite values on backend "
                                 f"{self.backend!r}); M3ViT expects normalised images (edgemoe.preprocess)")

    @staticmethod
    def _warn(notes):
        """The backend's input warnings for the call (e.g. emu's clipped pixels)."""
        for note in notes:
            warnings.warn(note, InputRangeWarning, stacklevel=3)

    def __call__(self, images: torch.Tensor, task: Optional[str] = None,
                 tasks: Optional[Iterable[str]] = None) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if (task is None) == (tasks is None):
            raise ValueError("pass exactly one of task='name' or tasks=[...]")
        if task is not None and not isinstance(task, str):
            raise TypeError(f"task must be one task name (a str), got {type(task).__name__}; for several use tasks=[...]")
        if isinstance(tasks, str):
            tasks = [tasks]  # tasks="semseg" means the one task, not its letters
        try:
            names = [task] if task is not None else list(tasks)
        except TypeError:
            raise TypeError(f"tasks must be a list of task names, got {type(tasks).__name__}") from None
        if not names:
            raise ValueError("tasks is empty")
        ids = [self._task_id(t) for t in names]
        outputs, notes = self._native.forward(self._check_images(images), ids)
        self._warn(notes)
        # The core refuses a non-finite backbone; finite but huge features can still overflow a head.
        self._refuse_overflow((None, out) for out in outputs)
        return outputs[0] if task is not None else dict(zip(names, outputs))

    forward = __call__

    def features(self, images: torch.Tensor, task: str) -> torch.Tensor:
        """The backbone's last block output [B, tokens, D] (cls first) for one task."""
        features, notes = self._native.features(self._check_images(images), self._task_id(task))
        self._warn(notes)  # the core has refused non-finite features
        return features

    def trace(self, images: torch.Tensor, task: str):
        """One task's forward pass layer by layer: an edgemoe.trace.Trace (name -> tensor, in forward
        order) with the same names and shapes on every backend and in edgemoe.reference.M3ViT.trace;
        edgemoe.compare(a, b) compares two. See edgemoe.trace for the names and how emu/fpga read them."""
        from .trace import Trace

        images = self._check_images(images)
        entries, notes = self._native.trace(images, self._task_id(task))
        self._warn(notes)
        # The same contract as a forward pass: an input that overflows float32 is refused, not traced.
        self._refuse_overflow((name, value) for name, value in entries if value.dtype == torch.float32)
        return Trace(entries, self.backend, task)

    def moe_trace(self, task: str):
        """What the accelerator's MoE unit did in the last forward of `task` (emu/fpga backends):
        an int array [images, MoE layers, 3, experts] holding, per expert, the tokens routed to it,
        and how many times its fc1 and its fc2 weights were fetched. None on backends without one."""
        import numpy as np

        trace = self._native.moe_trace(self._task_id(task))
        if trace is None:
            return None
        c = self._config
        layers, experts = len(c.moe_blocks), c.num_experts
        if not trace or not layers:
            return np.zeros((0, layers, 3, experts), dtype=np.int64)
        return np.asarray(trace, dtype=np.int64).reshape(-1, layers, 3, experts)

    def estimate(self, board: str = "zcu102", images: Optional[torch.Tensor] = None, task: Optional[str] = None,
                 clock_mhz: Optional[int] = None, heads: bool = True):
        """The accelerator's modelled latency and resources on `board` ("zcu102" or "u280"), per image
        (the mean over the batch of `images`) for one task, at `clock_mhz` (default: the board's, 250 MHz on
        the ZCU102 and 225 MHz on the U280; kernels/config/<board>.h says why): an edgemoe.estimate.Estimate
        (print it for the per-stage table). The board's own kernel
        build runs in emulation on `images` (default: the built-in photo) and counts every pipelined loop's
        cycles and memory traffic (see edgemoe.estimate); MoE load is these images' routing. Works on any
        backend; a model the board's build cannot hold raises ValueError naming the limit. `heads`: the task's
        head on the device too (default), else the backbone alone."""
        import numpy as np

        from .estimate import from_native
        from .imaging import sample_input

        if not isinstance(board, str):
            raise TypeError(f"board must be a str ('zcu102' or 'u280'), got {type(board).__name__}")
        if task is not None and not isinstance(task, str):
            raise TypeError(f"task must be a str (one of {self.tasks}), got {type(task).__name__}")
        task = self.tasks[0] if task is None else task
        task_id = self._task_id(task)
        clock = 0
        if clock_mhz is not None:
            from .config import check_int

            clock = check_int(clock_mhz, "clock_mhz", minimum=1)
            if not 50 <= clock <= 500:
                raise ValueError(f"clock_mhz: a kernel clock between 50 and 500 MHz, got {clock_mhz}")
        if not isinstance(heads, bool):
            raise TypeError(f"heads must be a bool (the head on the device too), got {type(heads).__name__}")
        if images is None:
            images = sample_input(self._config.image_size)
        raw = self._native.estimate(board.lower(), self._check_images(images), task_id, clock, heads)
        c = self._config
        trace = np.asarray(raw["moe_trace"], dtype=np.int64)
        if c.moe_blocks and trace.size:
            trace = trace.reshape(-1, len(c.moe_blocks), 3, c.num_experts)[-1]
        else:
            trace = np.zeros((0, 3, c.num_experts), dtype=np.int64)
        return from_native(raw, task, trace, top_k=c.top_k)

    def __repr__(self) -> str:
        c = self._config
        return (f"edgemoe.Model(backend={self.backend!r}, width={c.embed_dim}, depth={c.depth}, heads={c.num_heads}, "
                f"experts={c.num_experts}, top_k={c.top_k}, image={c.image_size[0]}x{c.image_size[1]}, "
                f"tasks={self.tasks}{', precision=bf16' if self.precision == 'bf16' else ''})")


def _with_source(exc: ValueError, sources: Optional[Dict[str, str]]) -> ValueError:
    """Add the file a bad tensor came from to the core's message."""
    message = str(exc)
    match = re.search(r"weight '([^']+)'", message)
    if sources and match:
        key = match.group(1)
        where = sources.get(key) or next(iter(set(sources.values())), None)
        message = message.replace("weight '", "checkpoint key '") + (f" (in {where})" if where else "")
        return CheckpointError(message)
    return type(exc)(message)
