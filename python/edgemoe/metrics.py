"""Task metrics as M3ViT reports them (evaluation/eval_*.py of M3ViT and of the Multi-Task-Learning-PyTorch
code it derives from), accumulated over a whole dataset.

- ``semseg``, ``human_parts``: mIoU in percent. Per class TP, FP, FN summed over every pixel of
  the dataset whose label is not 255; IoU = TP / max(TP + FP + FN, 1e-8), averaged over all classes
  (classes that never occur count as 0, as in M3ViT). Prediction: argmax over channels.
- ``sal``: maxF. Prediction sigmoid(logit); for each threshold in linspace(0.2, 0.9, 15) precision
  and recall per image, averaged over images; F = 2PR / (P + R) (M3ViT's beta^2 = 1, not the 0.3 of
  the saliency literature); maxF is the best threshold's F.
- ``normals``: mean angular error in degrees over every valid pixel of the dataset (label not
  255); the prediction is L2-normalised first.
- ``edge``: ODS F-measure. M3ViT evaluates edges with the BSDS benchmark (seism, ``fb`` measure:
  a one-to-one matching of predicted to ground-truth edge pixels within 0.0075 x the image diagonal,
  after thinning the prediction). Here, without that toolbox: for thresholds 0.01 ... 0.99 a
  predicted pixel is correct when a ground-truth edge pixel lies within the same tolerance
  (0.0075 x diagonal, at least 1 pixel; a disc), and a ground-truth pixel is recalled when a
  predicted one lies within it; counts summed over the dataset, F = 2PR / (P + R), the best
  threshold's F. No matching and no thinning, so one wide predicted edge can match many
  ground-truth pixels: the score is higher than odsF on the same prediction.
- ``depth``: RMSE in metres over every pixel of the dataset with a measurement (label > 0),
  sqrt(sum of squared errors / pixel count), as M3ViT's ``eval_depth``.

Each meter (``meter(task)``) is an accumulator of sufficient statistics with ``update``, ``merge`` and
``result``: a confusion matrix (segmentation) and pixel counts (edges) in int64; per-image precision
and recall (saliency), degree sums (normals) and squared-error sums (depth), each computed per image
the same way wherever it is, then summed exactly (``ExactSum``). So meters filled on shards of a
dataset, on any workers, merged in any order, give the single-process result bit for bit.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import torch

IGNORE = 255
SAL_THRESHOLDS = np.linspace(0.2, 0.9, 15)
EDGE_THRESHOLDS = np.arange(1, 100) / 100.0
EDGE_TOLERANCE = 0.0075  # x image diagonal (BSDS maxDist)

# Per task: the metric's name, unit, and whether higher is better.
METRICS = {
    "semseg": ("mIoU", "%", True),
    "human_parts": ("mIoU", "%", True),
    "sal": ("maxF", "", True),
    "normals": ("mean angle error", "deg", False),
    "edge": ("ODS F (tolerance, no matching)", "", True),
    "depth": ("RMSE", "m", False),
}


class ExactSum:
    """A float64 sum kept exactly, as non-overlapping partials (Shewchuk's algorithm, what ``math.fsum``
    does inside): values added and sums merged in any order give the same correctly rounded total.
    This is what lets a metric's float statistics, accumulated per shard on many workers, merge into
    exactly the single-process result."""

    __slots__ = ("partials", "special")

    def __init__(self, value: float = 0.0):
        self.partials = []
        self.special = 0.0  # the sum of the inf and NaN values, kept apart as math.fsum keeps them
        if value:
            self.add(value)

    def add(self, value: float) -> None:
        x = float(value)
        if not math.isfinite(x):
            self.special += x
            return
        partials, kept = self.partials, 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low:
                partials[kept] = low
                kept += 1
            x = high
        partials[kept:] = [x]

    def merge(self, other: "ExactSum") -> None:
        for p in other.partials:
            self.add(p)
        self.special += other.special

    @property
    def value(self) -> float:
        return self.special if self.special else math.fsum(self.partials)  # NaN and +-inf are truthy

    def __getstate__(self):
        return self.partials, self.special

    def __setstate__(self, state):
        partials, self.special = state
        self.partials = list(partials)

    def __repr__(self) -> str:
        return f"ExactSum({self.value!r})"


class Meter:
    """A task metric's accumulator: ``update`` with a batch, ``merge`` another meter of the same task
    (e.g. one filled on another worker), ``result`` the metric. It holds sufficient statistics only
    (counts, confusion matrices, exact sums), so meters filled on any split of a dataset, merged in any
    order, give exactly the result of one meter fed the whole dataset."""

    task = ""

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def _check_mergeable(self, other) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")

    def merge(self, other: "Meter") -> "Meter":
        """Add ``other``'s statistics to this meter's; returns self."""
        self._check_mergeable(other)
        self._merge(other)
        return self

    def _merge(self, other) -> None:
        raise NotImplementedError


class SegmentationMeter(Meter):
    """mIoU from the dataset's confusion matrix (rows: ground truth, columns: prediction), int64."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), np.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits [B, C, H, W] (or class ids [B, H, W]), target [B, H, W] with 255 = ignore."""
        pred = logits.argmax(1) if logits.dim() == 4 else logits
        pred, target = pred.reshape(-1).numpy(), target.reshape(-1).numpy()
        valid = target != IGNORE
        pred, target = pred[valid], target[valid]
        C = self.num_classes
        if target.size and (target.min() < 0 or target.max() >= C):
            raise ValueError(f"segmentation labels must be in [0, {C}) or 255, got {target.min()}..{target.max()}")
        self.confusion += np.bincount(target * C + np.clip(pred, 0, C - 1), minlength=C * C).reshape(C, C)

    def _check_mergeable(self, other) -> None:
        super()._check_mergeable(other)
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class meter into a {self.num_classes}-class one")

    def _merge(self, other) -> None:
        self.confusion += other.confusion

    @property
    def tp(self) -> np.ndarray:
        return np.diag(self.confusion)

    @property
    def fp(self) -> np.ndarray:
        return self.confusion.sum(0) - self.tp

    @property
    def fn(self) -> np.ndarray:
        return self.confusion.sum(1) - self.tp

    def result(self) -> float:
        tp = self.tp
        iou = tp / np.maximum(tp + self.fp + self.fn, 1e-8)
        return float(100 * iou.mean())


class SaliencyMeter(Meter):
    """maxF from the per-image precision and recall at each threshold, summed exactly over images."""

    def __init__(self):
        self.precision = [ExactSum() for _ in SAL_THRESHOLDS]
        self.recall = [ExactSum() for _ in SAL_THRESHOLDS]
        self.images = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits [B, 1, H, W], target [B, H, W] in {0, 1} (255 = ignore)."""
        prob = torch.sigmoid(logits[:, 0]).numpy()
        target = target.numpy()
        for p, t in zip(prob, target):
            valid = t != IGNORE
            gt = t[valid] > 0.5
            positives = np.count_nonzero(gt)
            for k, th in enumerate(SAL_THRESHOLDS):
                pred = p[valid] > th
                tp = np.count_nonzero(pred & gt)
                self.precision[k].add(tp / (np.count_nonzero(pred) + 1e-8))
                self.recall[k].add(tp / (positives + 1e-8))
            self.images += 1

    def _merge(self, other) -> None:
        for mine, theirs in zip(self.precision + self.recall, other.precision + other.recall):
            mine.merge(theirs)
        self.images += other.images

    def result(self) -> float:
        n = max(self.images, 1)
        P = np.array([s.value for s in self.precision]) / n
        R = np.array([s.value for s in self.recall]) / n
        return float(np.max(2 * P * R / (P + R + 1e-12)))


class NormalsMeter(Meter):
    """Mean angle error: the per-image sums of degrees (numpy's pairwise sum, the same for an image
    wherever it is computed) summed exactly, over the valid pixel count."""

    def __init__(self):
        self.degrees, self.pixels = ExactSum(), 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """output [B, 3, H, W] (any scale), target [B, 3, H, W] unit vectors, 255 = ignore."""
        n = output / output.norm(dim=1, keepdim=True).clamp_min(1e-12)
        valid = (target != IGNORE).all(1)
        for b in range(output.shape[0]):
            cos = (n[b] * target[b]).sum(0)[valid[b]].clamp(-1, 1).double()
            self.degrees.add(np.sum(np.degrees(np.arccos(cos.numpy()))))
            self.pixels += int(valid[b].sum())

    @property
    def sum_deg(self) -> float:
        return self.degrees.value

    def _merge(self, other) -> None:
        self.degrees.merge(other.degrees)
        self.pixels += other.pixels

    def result(self) -> float:
        return self.degrees.value / max(self.pixels, 1)


def _disc(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


class EdgeMeter(Meter):
    """ODS F from pixel counts per threshold, int64."""

    def __init__(self):
        self.tp_pred = np.zeros(len(EDGE_THRESHOLDS), np.int64)  # predicted pixels near a gt edge
        self.pred = np.zeros(len(EDGE_THRESHOLDS), np.int64)
        self.tp_gt = np.zeros(len(EDGE_THRESHOLDS), np.int64)  # gt pixels near a predicted edge
        self.gt = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        from scipy.ndimage import binary_dilation

        prob = torch.sigmoid(logits[:, 0]).numpy()
        target = target.numpy()
        for p, t in zip(prob, target):
            H, W = t.shape
            disc = _disc(max(1, int(round(EDGE_TOLERANCE * math.hypot(H, W)))))
            valid = t != IGNORE
            gt = (t > 0.5) & valid
            near_gt = binary_dilation(gt, disc)
            self.gt += int(gt.sum())
            for k, th in enumerate(EDGE_THRESHOLDS):
                pred = (p >= th) & valid
                self.pred[k] += int(pred.sum())
                self.tp_pred[k] += int((pred & near_gt).sum())
                self.tp_gt[k] += int((gt & binary_dilation(pred, disc)).sum()) if pred.any() else 0

    def _merge(self, other) -> None:
        self.tp_pred += other.tp_pred
        self.pred += other.pred
        self.tp_gt += other.tp_gt
        self.gt += other.gt

    def result(self) -> float:
        P = self.tp_pred / np.maximum(self.pred, 1)
        R = self.tp_gt / max(self.gt, 1)
        return float(np.max(2 * P * R / (P + R + 1e-12)))


class DepthMeter(Meter):
    """RMSE: the per-image sums of squared errors summed exactly, over the measured pixel count."""

    def __init__(self):
        self.squares, self.pixels = ExactSum(), 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """output [B, 1, H, W] metres, target [B, H, W] metres, 0 (or 255) = no measurement."""
        valid = (target > 0) & (target != IGNORE)
        for b in range(output.shape[0]):
            err = output[b, 0][valid[b]].double().numpy() - target[b][valid[b]].double().numpy()
            self.squares.add(np.sum(err * err))
            self.pixels += int(valid[b].sum())

    @property
    def sq(self) -> float:
        return self.squares.value

    def _merge(self, other) -> None:
        self.squares.merge(other.squares)
        self.pixels += other.pixels

    def result(self) -> float:
        return math.sqrt(self.squares.value / max(self.pixels, 1))


def meter(task: str, channels: Optional[int] = None):
    """A fresh accumulator for ``task`` (segmentation tasks need their class count)."""
    if task in ("semseg", "human_parts"):
        if not channels:
            raise ValueError(f"{task} needs its number of classes")
        return SegmentationMeter(channels)
    meters = {"sal": SaliencyMeter, "normals": NormalsMeter, "edge": EdgeMeter, "depth": DepthMeter}
    if task not in meters:
        raise ValueError(f"no metric for task {task!r}; known: {sorted(METRICS)}")
    return meters[task]()


class TaskMeters:
    """One meter per task: what an evaluation accumulates, per shard when it is distributed."""

    def __init__(self, tasks, channels=None):
        self.meters = {t: meter(t, channels(t) if channels else None) for t in tasks}

    def update(self, task: str, output: torch.Tensor, target: torch.Tensor) -> None:
        self.meters[task].update(output, target)

    def merge(self, other: "TaskMeters") -> "TaskMeters":
        if list(other.meters) != list(self.meters):
            raise ValueError(f"cannot merge meters of tasks {list(other.meters)} into meters of {list(self.meters)}")
        for task, m in self.meters.items():
            m.merge(other.meters[task])
        return self

    def result(self) -> Dict[str, float]:
        return {t: m.result() for t, m in self.meters.items()}


def format_metric(task: str, value: float) -> str:
    name, unit, _ = METRICS[task]
    return f"{name} {value:.2f}{(' ' + unit) if unit and unit != '%' else unit}" if unit != "" else f"{name} {value:.4f}"


Results = Dict[str, float]
