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


class SegmentationMeter:
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.tp = np.zeros(num_classes, np.int64)
        self.fp = np.zeros(num_classes, np.int64)
        self.fn = np.zeros(num_classes, np.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits [B, C, H, W] (or class ids [B, H, W]), target [B, H, W] with 255 = ignore."""
        pred = logits.argmax(1) if logits.dim() == 4 else logits
        pred, target = pred.reshape(-1).numpy(), target.reshape(-1).numpy()
        valid = target != IGNORE
        pred, target = pred[valid], target[valid]
        C = self.num_classes
        if target.size and (target.min() < 0 or target.max() >= C):
            raise ValueError(f"segmentation labels must be in [0, {C}) or 255, got {target.min()}..{target.max()}")
        confusion = np.bincount(target * C + np.clip(pred, 0, C - 1), minlength=C * C).reshape(C, C)
        tp = np.diag(confusion)
        self.tp += tp
        self.fp += confusion.sum(0) - tp
        self.fn += confusion.sum(1) - tp

    def result(self) -> float:
        iou = self.tp / np.maximum(self.tp + self.fp + self.fn, 1e-8)
        return float(100 * iou.mean())


class SaliencyMeter:
    def __init__(self):
        self.precision = np.zeros(len(SAL_THRESHOLDS))
        self.recall = np.zeros(len(SAL_THRESHOLDS))
        self.images = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits [B, 1, H, W], target [B, H, W] in {0, 1} (255 = ignore)."""
        prob = torch.sigmoid(logits[:, 0]).numpy()
        target = target.numpy()
        for p, t in zip(prob, target):
            valid = t != IGNORE
            gt = t[valid] > 0.5
            for k, th in enumerate(SAL_THRESHOLDS):
                pred = p[valid] > th
                tp = np.count_nonzero(pred & gt)
                self.precision[k] += tp / (np.count_nonzero(pred) + 1e-8)
                self.recall[k] += tp / (np.count_nonzero(gt) + 1e-8)
            self.images += 1

    def result(self) -> float:
        P, R = self.precision / max(self.images, 1), self.recall / max(self.images, 1)
        return float(np.max(2 * P * R / (P + R + 1e-12)))


class NormalsMeter:
    def __init__(self):
        self.sum_deg, self.pixels = 0.0, 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """output [B, 3, H, W] (any scale), target [B, 3, H, W] unit vectors, 255 = ignore."""
        n = output / output.norm(dim=1, keepdim=True).clamp_min(1e-12)
        valid = (target != IGNORE).all(1)
        cos = (n * target).sum(1)[valid].clamp(-1, 1).double()
        self.sum_deg += float(torch.rad2deg(torch.acos(cos)).sum())
        self.pixels += int(valid.sum())

    def result(self) -> float:
        return self.sum_deg / max(self.pixels, 1)


def _disc(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


class EdgeMeter:
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

    def result(self) -> float:
        P = self.tp_pred / np.maximum(self.pred, 1)
        R = self.tp_gt / max(self.gt, 1)
        return float(np.max(2 * P * R / (P + R + 1e-12)))


class DepthMeter:
    def __init__(self):
        self.sq, self.pixels = 0.0, 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """output [B, 1, H, W] metres, target [B, H, W] metres, 0 (or 255) = no measurement."""
        valid = (target > 0) & (target != IGNORE)
        err = output[:, 0][valid].double() - target[valid].double()
        self.sq += float((err * err).sum())
        self.pixels += int(valid.sum())

    def result(self) -> float:
        return math.sqrt(self.sq / max(self.pixels, 1))


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


def format_metric(task: str, value: float) -> str:
    name, unit, _ = METRICS[task]
    return f"{name} {value:.2f}{(' ' + unit) if unit and unit != '%' else unit}" if unit != "" else f"{name} {value:.4f}"


Results = Dict[str, float]
