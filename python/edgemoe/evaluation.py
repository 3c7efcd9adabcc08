"""Task metrics of a model on a dataset: ``edgemoe.evaluate(model, dataset)``.

``model`` is an ``edgemoe.Model`` on any backend (cpu, emu, fpga) or an ``edgemoe.reference.M3ViT``
(PyTorch). Metrics are those of ``edgemoe.metrics``, computed as M3ViT computes them.

The dataset
-----------
``dataset`` is anything with ``len(dataset)`` and ``dataset[i]`` (a list, a ``torch.utils.data.Dataset``):
the built-in ``edgemoe.data`` readers (the synthetic scenes, PASCAL-Context and NYUD-v2 in M3ViT's folder
layouts) or your own. Each item is a dict holding

- ``"image"``: float32 ``[3, H, W]``, normalised as ``edgemoe.preprocess`` does (ImageNet mean/std
  on RGB in [0, 1]), at the model's input size ``model.config.image_size``;
- one target per task to evaluate, at the same ``H x W``:

  ========================  =====================  ====================================================
  key                       shape, dtype           values
  ========================  =====================  ====================================================
  ``semseg``                [H, W] integer         class ids 0 .. classes - 1; 255 = ignore
  ``human_parts``           [H, W] integer         part ids 0 .. parts - 1 (0 = background); 255 = ignore
  ``sal``                   [H, W] float (or int)  1 = salient, 0 = not (> 0.5 counts as salient); 255 = ignore
  ``edge``                  [H, W] float (or int)  1 = edge pixel, 0 = not; 255 = ignore
  ``normals``               [3, H, W] float        unit vectors (x right, y up, z towards the camera);
                                                   a pixel with any component 255 is ignored
  ``depth``                 [H, W] float           metres; 0 (or 255) = no measurement, ignored
  ========================  =====================  ====================================================

Other keys (``edgemoe.data`` adds ``"pixels"``) are ignored. The tasks evaluated are those the model
and the first item both have, or ``tasks=``; every item must then hold each of them. Items are checked
as they are read: an item that is not a dict is a TypeError, a wrong shape, dtype or value a ValueError
naming the item's index and key. Saliency and edge targets are probabilities or {0, 1} masks, not
0 .. 255 grey levels (255 means ignore).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from . import metrics as _metrics
from .blas import single_threaded_blas
from .progress import Progress

ITEM_FORMAT = ("a dict with 'image' (float32 [3, H, W], normalised as edgemoe.preprocess does) and one target "
               "per task ('semseg': int [H, W] class ids, 'sal': float [H, W] in [0, 1], 'normals': float "
               "[3, H, W], ...; 255 = ignore; see edgemoe.evaluation)")
SEGMENTATION = ("semseg", "human_parts")
MASKS = ("sal", "edge")  # probabilities or {0, 1} masks


def _model_parts(model):
    """(name for messages, tasks, channels per task, image size, forward(images, task) -> output)."""
    from .model import Model
    from .reference import M3ViT

    if isinstance(model, Model):
        return (model.backend, model.tasks, model.config.out_channels, model.config.image_size,
                lambda x, t: model(x, task=t))
    if isinstance(model, M3ViT):
        def forward(x, t):
            with torch.no_grad(), single_threaded_blas():  # PyTorch at its fastest here (edgemoe.blas)
                return model(x, t)
        return "PyTorch", list(model.tasks), model.cfg.out_channels, model.cfg.image_size, forward
    raise TypeError(f"model must be an edgemoe.Model or an edgemoe.reference.M3ViT, got {type(model).__name__}")


def _tensor(index: int, item: Mapping, key: str) -> torch.Tensor:
    if key not in item:
        what = "'image'" if key == "image" else f"{key!r} target"
        raise ValueError(f"dataset item {index} has no {what}; keys: {sorted(map(str, item))}; an item must be "
                         f"{ITEM_FORMAT}")
    value = item[key]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"dataset item {index}: {key!r} must be a torch.Tensor, got {type(value).__name__} "
                        f"(torch.from_numpy converts an array)")
    if value.layout != torch.strided or value.device.type != "cpu":
        raise ValueError(f"dataset item {index}: {key!r} must be a dense CPU tensor, got layout {value.layout} "
                         f"on {value.device}")
    return value


def check_item(index: int, item, tasks: Sequence[str], image_size: Tuple[int, int],
               channels: Callable[[str], int]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Item ``index`` checked against the format in this module's doc: (image, {task: target}), the
    targets in the dtypes the meters take (int64 class ids, float32 otherwise)."""
    if not isinstance(item, Mapping):
        raise TypeError(f"dataset item {index} is a {type(item).__name__}; an item must be {ITEM_FORMAT}")
    H, W = image_size
    image = _tensor(index, item, "image")
    if image.dtype != torch.float32:
        raise ValueError(f"dataset item {index}: 'image' must be float32 (normalised as edgemoe.preprocess does), "
                         f"got {image.dtype}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"dataset item {index}: 'image' must be [3, H, W] (one image, no batch dimension), "
                         f"got shape {tuple(image.shape)}")
    if tuple(image.shape[1:]) != (H, W):
        raise ValueError(f"dataset item {index}: images are {tuple(image.shape[1:])}, the model takes {(H, W)}; "
                         f"open the dataset with image_size={(H, W)}")
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"dataset item {index}: 'image' holds NaN or Inf values")
    targets = {}
    for task in tasks:
        t = _tensor(index, item, task)
        shape = (3, H, W) if task == "normals" else (H, W)
        if tuple(t.shape) != shape:
            raise ValueError(f"dataset item {index}: {task!r} must have shape {list(shape)} like its image, "
                             f"got {tuple(t.shape)}")
        if t.is_complex() or (t.dtype == torch.bool and task not in MASKS):
            raise ValueError(f"dataset item {index}: {task!r} cannot be {t.dtype}")
        if task in SEGMENTATION:
            if t.is_floating_point():
                raise ValueError(f"dataset item {index}: {task!r} must hold integer class ids (int64), got {t.dtype}")
            t = t.to(torch.int64)
            classes = channels(task)
            bad = (t != _metrics.IGNORE) & ((t < 0) | (t >= classes))
            if bool(bad.any()):
                raise ValueError(f"dataset item {index}: {task!r} holds class ids outside 0 .. {classes - 1} and "
                                 f"255 (ignore), e.g. {int(t[bad][0])}; the model has {classes} classes")
        else:
            if task in ("normals", "depth") and not t.is_floating_point():
                unit = " in metres (NYUD's uint16 millimetres / 1000)" if task == "depth" else ""
                raise ValueError(f"dataset item {index}: {task!r} must be a float tensor{unit}, got {t.dtype}")
            t = t.to(torch.float32)
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"dataset item {index}: {task!r} holds NaN or Inf values (mark pixels to ignore with 255)")
            if task in MASKS:
                bad = (t != _metrics.IGNORE) & ((t < 0) | (t > 1))
                if bool(bad.any()):
                    raise ValueError(f"dataset item {index}: {task!r} must be in [0, 1] or 255 (ignore), got "
                                     f"{float(t[bad][0]):g}; divide 0 .. 255 grey levels by 255")
        targets[task] = t
    return image, targets


@dataclass
class SkippedItem:
    """A dataset item (or image file) left out of a run with ``skip_bad``: why, and where it was read."""
    index: int
    name: str
    error: str
    worker: Optional[str] = None

    @classmethod
    def of(cls, index: int, name: str, exc: BaseException, worker: Optional[str] = None) -> "SkippedItem":
        return cls(index, name, f"{type(exc).__name__}: {exc}", worker)

    def __str__(self) -> str:
        where = f" on worker {self.worker}" if self.worker else ""
        return f"{self.name}{where}: {self.error}"


class EvaluationResult(dict):
    """{task: metric}, plus ``images`` (how many were evaluated) and ``skipped`` (the SkippedItems that
    ``skip_bad=True`` left out, in dataset order; empty otherwise)."""

    def __init__(self, results: Dict[str, float], images: int, skipped: Sequence[SkippedItem] = ()):
        super().__init__(results)
        self.images = images
        self.skipped = list(skipped)


@dataclass
class PartialEvaluation:
    """What evaluating some of a dataset's items accumulates: mergeable meters, counts, skipped items."""
    meters: _metrics.TaskMeters
    images: int = 0
    skipped: List[SkippedItem] = field(default_factory=list)

    def merge(self, other: "PartialEvaluation") -> "PartialEvaluation":
        self.meters.merge(other.meters)
        self.images += other.images
        self.skipped += other.skipped
        return self

    def result(self) -> EvaluationResult:
        return EvaluationResult(self.meters.result(), self.images, sorted(self.skipped, key=lambda s: s.index))


def item_name(dataset, index: int) -> str:
    """How a dataset names item ``index`` in messages: its ``item_name(i)`` (the edgemoe.data readers give
    the image file or the scene), else "dataset item i"."""
    namer = getattr(dataset, "item_name", None)
    if callable(namer):
        try:
            return str(namer(index))
        except Exception:  # a name is for the message only; never hide the item's own error behind it
            pass
    return f"dataset item {index}"


def _on_worker(exc: BaseException, name: str, index: int) -> BaseException:
    """``exc`` naming the item and, on a Dask worker, the worker; the same type where it can be rebuilt."""
    from .distributed import current_worker_address

    worker = current_worker_address()
    if worker is None:
        return exc
    text = str(exc)
    if not text.startswith(f"dataset item {index}"):
        text = f"{name} (dataset item {index}): {text}"
    try:  # the item's own exception type (FileNotFoundError stays one), where it takes a message
        named = type(exc)(f"worker {worker}: {text}")
    except Exception:  # noqa: BLE001 - a type that needs other arguments
        named = ValueError(f"worker {worker}: {text}")
    return named


# What reading or checking an item raises when the item is bad (not the model, not the program).
ITEM_ERRORS = (ValueError, TypeError, OSError, KeyError)


def evaluate_items(model, dataset, indices: Sequence[int], tasks: Sequence[str], batch_size: int = 8,
                   skip_bad: bool = False, on_batch: Optional[Callable[[int], None]] = None,
                   first=None) -> PartialEvaluation:
    """The meters of ``tasks`` over ``dataset[i]`` for i in ``indices``, ``batch_size`` images per model
    call: the one loop of ``evaluate``, single-process (all indices) or per shard on a Dask worker.
    A bad item raises naming it (and the worker), or with ``skip_bad`` is listed and left out.
    ``first``: item ``indices[0]``, when the caller has read it already."""
    from .distributed import current_worker_address

    _, _, channels, image_size, forward = _model_parts(model)
    partial = PartialEvaluation(_metrics.TaskMeters(tasks, channels))
    indices = list(indices)
    for start in range(0, len(indices), batch_size):
        checked = []
        for i in indices[start:start + batch_size]:
            try:
                item = first if (first is not None and i == indices[0]) else dataset[i]
                checked.append(check_item(i, item, tasks, image_size, channels))
            except ITEM_ERRORS as exc:
                if not skip_bad:
                    raise _on_worker(exc, item_name(dataset, i), i) from None
                partial.skipped.append(SkippedItem.of(i, item_name(dataset, i), exc, current_worker_address()))
        if checked:
            images = torch.stack([image for image, _ in checked])
            for t in tasks:
                out = forward(images, t).float()
                partial.meters.update(t, out, torch.stack([targets[t] for _, targets in checked]))
            partial.images += len(checked)
        if on_batch:
            on_batch(len(indices[start:start + batch_size]))
    return partial


def _check_dataset(dataset) -> None:
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")) or isinstance(dataset, (str, bytes, Mapping)):
        raise TypeError(f"dataset must support len() and dataset[i] (a list or a torch.utils.data.Dataset) of "
                        f"items, got {type(dataset).__name__}; an item is {ITEM_FORMAT}")
    if len(dataset) < 1:
        raise ValueError("dataset is empty")


def _first_item(dataset, skip_bad: bool):
    """(index, item, skipped) of the first item that reads as a dict, whose keys choose the tasks; with
    ``skip_bad`` the items before it that failed are the SkippedItems, else the first failure raises."""
    skipped = []
    for i in range(len(dataset)):
        try:
            item = dataset[i]
            if not isinstance(item, Mapping):
                raise TypeError(f"dataset item {i} is a {type(item).__name__}; an item must be {ITEM_FORMAT}")
            return i, item, skipped
        except ITEM_ERRORS as exc:
            if not skip_bad:
                raise
            skipped.append(SkippedItem.of(i, item_name(dataset, i), exc))
    raise ValueError(f"none of the dataset's {len(dataset)} items can be read; the first: {skipped[0]}")


def choose_tasks(model_tasks: Sequence[str], first: Mapping, tasks) -> List[str]:
    """The tasks to evaluate: ``tasks`` checked against the model and the first item, or those both have."""
    if isinstance(tasks, str):
        tasks = [tasks]  # one task name, not its letters
    if tasks is None:
        chosen = [t for t in model_tasks if t in first]
        if not chosen:
            raise ValueError(f"the model's tasks {list(model_tasks)} and the dataset's targets "
                             f"{sorted(str(k) for k in first if k not in ('image', 'pixels'))} have nothing in common")
        return chosen
    chosen = list(tasks)
    for t in chosen:
        if t not in model_tasks:
            raise ValueError(f"unknown task {t!r}; the model has {list(model_tasks)}")
        if t not in first:
            raise ValueError(f"the dataset has no {t!r} targets")
    return chosen


def evaluate(model, dataset, tasks: Optional[Sequence[str]] = None, batch_size: int = 8,
             progress: bool = True, stream=None, *, client=None, skip_bad: bool = False,
             shard_size: Optional[int] = None) -> EvaluationResult:
    """{task: metric} over ``dataset`` for each task the model and the dataset both have (or ``tasks``).

    The metric per task is ``edgemoe.metrics.METRICS[task]``: semseg/human_parts mIoU (%), sal maxF,
    normals mean angle error (degrees), edge ODS F (with tolerance, no matching), depth RMSE (m).
    The items' format is in this module's doc (``help(edgemoe.evaluation)``).

    ``client``: a ``dask.distributed.Client``; the dataset is then split into shards of ``shard_size``
    items (default: about four per worker, whole batches) that the workers evaluate, each reading its
    own items, and the shards' meters are merged (edgemoe.distributed). The result equals the
    single-process one exactly. ``skip_bad``: an item that cannot be read or is malformed is left out
    and listed in the result's ``skipped`` instead of stopping the run.
    """
    name, model_tasks, _, _, _ = _model_parts(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(skip_bad, bool):
        raise TypeError(f"skip_bad must be a bool, got {type(skip_bad).__name__}")
    _check_dataset(dataset)
    first_index, first, skipped_before = _first_item(dataset, skip_bad)
    tasks = choose_tasks(model_tasks, first, tasks)
    indices = range(first_index, len(dataset))
    if client is not None:
        from .distributed import evaluate_on_client

        partial = evaluate_on_client(client, model, dataset, indices, tasks, batch_size, skip_bad, progress,
                                     shard_size, stream)
    else:
        if shard_size is not None:
            raise ValueError("shard_size: only a distributed evaluation (client=...) has shards")
        bar = Progress(len(indices), f"evaluate {name}", stream=stream, unit="images") if progress else None
        partial = evaluate_items(model, dataset, indices, tasks, batch_size, skip_bad,
                                 on_batch=(lambda n: bar.step(count=n)) if bar else None, first=first)
    partial.skipped = skipped_before + partial.skipped
    return partial.result()


def format_results(results: Dict[str, float]) -> str:
    rows = [f"{t:<12} {_metrics.format_metric(t, v)}" for t, v in results.items()]
    return "\n".join(rows)


def trivial_baseline(dataset, tasks: Optional[Sequence[str]] = None, channels=None) -> Dict[str, float]:
    """The metrics of predicting the same thing everywhere, from the dataset's own statistics: the
    majority class, the pixel-wise majority for saliency and edges (all 0: their F is then that of
    the best constant probability), the mean normal, the mean depth. What a model must clearly beat."""
    first = dataset[0]
    tasks = list(tasks) if tasks else [t for t in _metrics.METRICS if t in first]
    counts, normal_sum, depth_sum, depth_n = {}, torch.zeros(3, dtype=torch.float64), 0.0, 0
    for i in range(len(dataset)):
        item = dataset[i]
        for t in ("semseg", "human_parts"):
            if t in tasks:
                lab = item[t][item[t] != _metrics.IGNORE]
                c = torch.bincount(lab.reshape(-1), minlength=256)[:256]
                counts[t] = counts.get(t, 0) + c
        if "normals" in tasks:
            n = item["normals"]
            valid = (n != _metrics.IGNORE).all(0)
            normal_sum += n[:, valid].double().sum(1)
        if "depth" in tasks:
            d = item["depth"]
            valid = (d > 0) & (d != _metrics.IGNORE)
            depth_sum += float(d[valid].double().sum())
            depth_n += int(valid.sum())
    out = {}
    for t in tasks:
        ch = channels(t) if channels else (int(counts[t].nonzero().max()) + 1 if t in counts else None)
        m = _metrics.meter(t, ch)
        for i in range(len(dataset)):
            item = dataset[i]
            H, W = item["image"].shape[-2:]
            if t in ("semseg", "human_parts"):
                pred = torch.full((1, H, W), int(counts[t].argmax()))
                m.update(pred, item[t][None])
            elif t in ("sal", "edge"):
                m.update(torch.zeros(1, 1, H, W), item[t][None])  # sigmoid(0) = 0.5 everywhere
            elif t == "normals":
                mean = (normal_sum / normal_sum.norm().clamp_min(1e-12)).float()
                m.update(mean.view(1, 3, 1, 1).expand(1, 3, H, W), item[t][None])
            elif t == "depth":
                m.update(torch.full((1, 1, H, W), depth_sum / max(depth_n, 1)), item[t][None])
        out[t] = m.result()
    return out


def routing_statistics(reference, dataset, tasks: Optional[Sequence[str]] = None,
                       batch_size: int = 8) -> Dict[str, Dict[int, "np.ndarray"]]:
    """{task: {MoE block: share of the token slots each expert received}} over ``dataset``, from
    the PyTorch model's routing (``reference.routing``): which experts each task selects per layer."""
    import numpy as np

    tasks = list(tasks) if tasks else list(reference.tasks)
    E = reference.cfg.num_experts
    counts = {t: {} for t in tasks}
    for start in range(0, len(dataset), batch_size):
        images = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch_size, len(dataset)))])
        for t in tasks:
            for block, (experts, _) in reference.routing(images, t).items():
                c = np.bincount(experts.reshape(-1).numpy(), minlength=E).astype(np.float64)
                counts[t][block] = counts[t].get(block, 0) + c
    return {t: {b: c / c.sum() for b, c in layers.items()} for t, layers in counts.items()}


def _js_divergence(p, q) -> float:
    import numpy as np

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2
    kl = lambda x: float((x[x > 0] * np.log(x[x > 0] / m[x > 0])).sum())  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


def routing_task_specificity(reference, dataset, tasks: Optional[Sequence[str]] = None,
                             batch_size: int = 8) -> Dict[int, float]:
    """{MoE block: between-task / within-task divergence of the expert shares}. The images are split
    into two halves (even and odd indices); "within" is the mean Jensen-Shannon divergence between
    one task's expert shares on the two halves (how much routing varies with the images), "between"
    the mean over pairs of different tasks across the halves. 1 means the tasks route alike; much
    more than 1 means each task has its own routing, stable over images."""
    if len(dataset) < 2:
        raise ValueError("routing_task_specificity needs at least 2 images")
    from torch.utils.data import Subset

    a = routing_statistics(reference, Subset(dataset, range(0, len(dataset), 2)), tasks, batch_size)
    b = routing_statistics(reference, Subset(dataset, range(1, len(dataset), 2)), tasks, batch_size)
    names = list(a)
    out = {}
    for layer in next(iter(a.values())):
        within = sum(_js_divergence(a[t][layer], b[t][layer]) for t in names) / len(names)
        pairs = [(s, t) for s in names for t in names if s != t]
        between = sum(_js_divergence(a[s][layer], b[t][layer]) for s, t in pairs) / max(len(pairs), 1)
        out[layer] = between / within if within > 0 else float("inf")
    return out


def routing_concentration(share) -> float:
    """1 - normalised entropy of an expert-share vector: 0 = every expert equally, 1 = one expert."""
    import numpy as np

    p = np.asarray(share, dtype=np.float64)
    p = p[p > 0]
    return float(1 - (-(p * np.log(p)).sum()) / np.log(len(share))) if len(share) > 1 else 1.0


def print_results(results: Dict[str, float], stream=None) -> None:
    print(format_results(results), file=stream or sys.stdout)
