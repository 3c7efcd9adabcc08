"""M3ViT's input recipe and output post-processing (shared/spec/m3vit.md §2.1, §3), plus PNG rendering."""
from __future__ import annotations

import numbers
import os
import struct
import warnings
from pathlib import Path
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import AspectRatioWarning

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SEGMENTATION_TASKS = ("semseg", "human_parts")


def sample_photo() -> np.ndarray:
    """The built-in photo: scikit-image's astronaut (512x512 RGB, shipped with python3-skimage)."""
    import skimage.data

    return skimage.data.astronaut()


def sample_input(image_size) -> torch.Tensor:
    """The built-in photo preprocessed to ``image_size`` [1, 3, H, W], without the AspectRatioWarning:
    the photo is a default the user did not choose, so its stretch is not news to them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AspectRatioWarning)
        return preprocess(sample_photo(), image_size)


def _as_rgb_array(image) -> np.ndarray:
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                return np.asarray(im.convert("RGB"))
        # PIL reports a damaged file as OSError, SyntaxError (broken PNG chunks), ValueError,
        # struct.error or EOFError, depending on the format and where the damage is.
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
            raise ValueError(f"cannot read image {image}: {exc}") from None
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(f"preprocess takes a PIL image, a file path or uint8 [H, W, 3] pixels, got a "
                            f"{image.dtype} tensor; a normalised float32 [B, 3, H, W] tensor goes to the model as it is")
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a PIL image, a file path or a uint8 [H, W, 3] numpy array, "
                        f"got {type(image).__name__}")
    array = image
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"image arrays must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    return array[:, :, :3]


# Larger sides are a mistake, not an image: 16384 x 16384 float32 RGB is already 3 GB.
MAX_IMAGE_SIDE = 16384
# preprocess warns above this relative change of the aspect ratio (1 %: a 512 x 512 photo resized to
# 512 x 517 is not worth a warning, a 4:3 photo squeezed into 1:1 is).
ASPECT_TOLERANCE = 0.01


def check_preprocess_size(image_size) -> Tuple[int, int]:
    """``image_size`` as (H, W): an int is a square side; bools, non-positive and absurd sizes are refused."""
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    elif isinstance(image_size, bool) or not isinstance(image_size, Sequence) or isinstance(image_size, (str, bytes)) \
            or len(image_size) != 2:
        raise TypeError(f"image_size must be an int (a square side) or a pair (H, W) of ints, e.g. "
                        f"model.config.image_size; got {type(image_size).__name__} {image_size!r:.60}")
    size = []
    for axis, value in zip(("H", "W"), image_size):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"image_size {axis} must be an int, got {type(value).__name__} {value!r:.40}")
        if not 1 <= value <= MAX_IMAGE_SIDE:
            raise ValueError(f"image_size {axis} must be between 1 and {MAX_IMAGE_SIDE} pixels, got {value}")
        size.append(int(value))
    return size[0], size[1]


def _warn_if_stretched(source_hw: Tuple[int, int], target_hw: Tuple[int, int]) -> None:
    (h, w), (H, W) = source_hw, target_hw
    change = (W / H) / (w / h)
    if max(change, 1 / change) - 1 > ASPECT_TOLERANCE:
        warnings.warn(f"preprocess stretches the {h} x {w} (H x W) image to {H} x {W}: its aspect ratio (W / H) "
                      f"changes from {w / h:.3f} to {W / H:.3f} ({(change - 1) * 100:+.0f} %), as M3ViT's resize does; "
                      f"crop the image to the model's shape first to keep it undistorted",
                      AspectRatioWarning, stacklevel=3)


def preprocess(image, image_size: Union[int, Sequence[int]]) -> torch.Tensor:
    """PIL image, path or uint8 HWC array -> normalised float32 [1, 3, H, W].

    ``image_size`` is (H, W), usually ``model.config.image_size``; an int n means (n, n).
    Cubic resize without aspect preservation (OpenCV's INTER_CUBIC kernel, a = -0.75, which is
    torch's bicubic), truncation to uint8 with M3ViT's wrap-around quirk for cubic overshoot,
    /255, ImageNet mean/std on RGB. A resize that changes the aspect ratio by more than 1 % warns
    (edgemoe.AspectRatioWarning): the model then sees a distorted image.
    """
    H, W = check_preprocess_size(image_size)
    array = _as_rgb_array(image)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image has no pixels (shape {array.shape})")
    rgb = torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)[None]
    if tuple(rgb.shape[2:]) != (H, W):
        _warn_if_stretched(tuple(rgb.shape[2:]), (H, W))
        rgb = F.interpolate(rgb, size=(H, W), mode="bicubic", align_corners=False)
    as_uint8 = torch.remainder(torch.trunc(rgb).to(torch.int64), 256).to(torch.float32)  # img.astype(np.uint8)
    x = as_uint8 / 255.0
    return ((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).contiguous()


def postprocess(task: str, output: torch.Tensor) -> np.ndarray:
    """Raw head output [C, H, W] or [B, C, H, W] -> M3ViT's prediction maps.

    semseg/human_parts: class index (argmax); sal/edge: 255 * sigmoid; normals: L2-normalised,
    mapped to [0, 255] as (n + 1) * 255 / 2, channels last; depth: the raw regression.
    """
    if not isinstance(output, torch.Tensor) or output.dim() not in (3, 4):
        raise ValueError("output must be a [C, H, W] or [B, C, H, W] tensor")
    out = output.detach().float()
    if task in SEGMENTATION_TASKS:
        result = out.argmax(dim=-3)
    elif task in ("sal", "edge"):
        result = 255.0 * torch.sigmoid(out.select(-3, 0))
    elif task == "normals":
        n = F.normalize(out, p=2, dim=-3)
        result = ((n + 1.0) * (255.0 / 2.0)).movedim(-3, -1)
    elif task == "depth":
        result = out.select(-3, 0)
    else:
        raise ValueError(f"unknown task {task!r}")
    return result.numpy()


def palette(n: int) -> np.ndarray:
    """PASCAL VOC's bit-interleaved colour map: row i is class i's RGB colour (uint8 [n, 3])."""
    colours = np.zeros((max(n, 1), 3), np.uint8)
    for i in range(len(colours)):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def render(task: str, prediction: np.ndarray, num_classes: int = 256) -> np.ndarray:
    """A single image's post-processed prediction -> RGB uint8 for a PNG."""
    if task in SEGMENTATION_TASKS:
        return palette(max(num_classes, int(prediction.max()) + 1))[prediction]
    if task == "normals":
        return np.clip(prediction, 0, 255).astype(np.uint8)
    from matplotlib import colormaps

    values = prediction.astype(np.float64)
    if task in ("sal", "edge"):
        values = values / 255.0
    else:
        lo, hi = np.percentile(values, 1), np.percentile(values, 99)
        values = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
    return (colormaps["magma" if task == "depth" else "inferno"](values)[..., :3] * 255).astype(np.uint8)


def render_target(task: str, target: torch.Tensor, num_classes: int = 256) -> np.ndarray:
    """A ground-truth label of edgemoe.data ([H, W], or [3, H, W] for normals; 255 = ignore) as RGB,
    drawn like render draws the prediction (ignored pixels as class 0 / a zero normal)."""
    t = target.numpy()
    if task in SEGMENTATION_TASKS:
        return render(task, np.where(t == 255, 0, t), num_classes)
    if task == "normals":
        return render(task, ((np.where(t == 255, 0, t) + 1) * 127.5).transpose(1, 2, 0))
    if task == "depth":
        return render(task, t)
    return render(task, (np.clip(t, 0, 1) * 255).astype(np.uint8))


def unnormalise(image: torch.Tensor) -> np.ndarray:
    """preprocess's [3, H, W] output back to uint8 RGB [H, W, 3], for display."""
    rgb = image.permute(1, 2, 0).numpy() * np.array(STD) + np.array(MEAN)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def save_png(path: Union[str, Path], rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path)
