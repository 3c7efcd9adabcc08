"""Datasets for evaluation and training: built-in synthetic multi-task scenes, and readers for the
folder layouts M3ViT's own data loaders use for PASCAL-Context (PASCAL_MT) and NYUD-v2 (NYUD_MT).

Every item is a dict: ``image`` [3, H, W] float32 normalised as M3ViT does (ImageNet mean/std),
``pixels`` [H, W, 3] uint8, and one target per task it has:

- ``semseg``, ``human_parts``: [H, W] int64 class ids, 255 = ignore;
- ``sal``, ``edge``: [H, W] float32 in {0, 1} (``edge`` may carry 255 = ignore);
- ``normals``: [3, H, W] float32 unit vectors (x right, y up, z towards the camera), 255 = ignore;
- ``depth``: [H, W] float32 metres, 0 = no measurement (ignored).

The synthetic scenes are a seeded 3D toy world: objects of four classes (sphere, cylinder, box,
cone; recognised by shape, never by colour) stand on a floor in front of a wall, with random
textures, colours, lighting and painted clutter. Every label comes from the same geometry, so the
tasks agree: ``semseg`` is the object class, ``human_parts`` splits each object into its top and
side surfaces, ``sal`` marks the objects, ``edge`` their outlines and part boundaries, ``normals``
and ``depth`` the surfaces' orientation and distance. Scene ``i`` of a split is a pure function of
``(split, i)``.
"""
from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .matfile import MAX_FILE_BYTES as MAX_MAT_BYTES, MatStruct, read_mat

SYNTHETIC_CLASSES = ("background", "sphere", "cylinder", "box", "cone")
# Each object class has a top part and a side part: part = 2 * class - 1 (top) or 2 * class (side).
SYNTHETIC_PARTS = ("background",) + tuple(f"{c} {p}" for c in SYNTHETIC_CLASSES[1:] for p in ("top", "side"))
# Channels of each task's prediction on the synthetic scenes (a model trained on them has these heads).
SYNTHETIC_TASKS = (("semseg", len(SYNTHETIC_CLASSES)), ("human_parts", len(SYNTHETIC_PARTS)), ("sal", 1),
                   ("normals", 3), ("edge", 1), ("depth", 1))
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}  # disjoint seed streams
IGNORE = 255
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_FOCAL = 220.0      # pixels, for a 256-pixel-wide image
_CAMERA_HEIGHT = 1.2
_WALL_DEPTH = 9.0


def trained_checkpoint() -> Path:
    """The built-in checkpoint: a small M3ViT trained on the synthetic scenes (``edgemoe.train``),
    in M3ViT's rank-shard directory format; ``Model.from_checkpoint`` loads it like any other."""
    path = Path(__file__).resolve().parent / "checkpoints" / "synthetic-m3vit" / "checkpoint.pth.tar"
    if not (path / "0.pth").is_file():
        raise FileNotFoundError(f"the built-in trained checkpoint is missing at {path}; reinstall edgemoe")
    return path


def trained_config() -> Path:
    """The M3ViT YAML config of the built-in checkpoint: what a checkpoint does not record (its
    heads, top-k 2 and 128 x 256 input); from_checkpoint finds it next to ``trained_checkpoint()``."""
    return trained_checkpoint().parent / "config.yml"


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] with M3ViT's ImageNet normalisation."""
    x = (pixels.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _texture(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """A random scalar texture in [0, 1] over pixel coordinates: stripes, checks, blobs or plain."""
    kind = rng.integers(4)
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 14)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    if kind == 1:
        cell = rng.uniform(3, 10)
        return ((np.floor(xs / cell) + np.floor(ys / cell)) % 2).astype(np.float32)
    if kind == 2:
        fx, fy, px, py = rng.uniform(0.05, 0.4, 2).tolist() + rng.uniform(0, 6.3, 2).tolist()
        return 0.5 + 0.25 * (np.sin(xs * fx + px) + np.sin(ys * fy + py))
    return np.full(np.broadcast(ys, xs).shape, 0.5, dtype=np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Two random RGB colours in [0, 1] a texture blends between."""
    return rng.uniform(0.05, 0.95, (2, 3)).astype(np.float32)


def _shade(rng, base: np.ndarray, tex: np.ndarray, normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    colour = base[0] * tex[..., None] + base[1] * (1 - tex[..., None])
    lambert = np.clip(normals @ light, 0, 1)
    return colour * (0.35 + 0.75 * lambert[..., None])


class _Canvas:
    def __init__(self, H: int, W: int):
        self.H, self.W = H, W
        self.rgb = np.zeros((H, W, 3), np.float32)
        self.depth = np.zeros((H, W), np.float32)
        self.normals = np.zeros((H, W, 3), np.float32)
        self.semseg = np.zeros((H, W), np.uint8)
        self.parts = np.zeros((H, W), np.uint8)
        self.instance = np.zeros((H, W), np.int32)


def _background(rng, c: _Canvas, horizon: int, focal: float, light: np.ndarray) -> None:
    ys, xs = np.mgrid[0:c.H, 0:c.W].astype(np.float32)
    floor = ys >= horizon
    floor_depth = _CAMERA_HEIGHT * focal / np.maximum(ys - horizon + 0.5, 0.5)
    c.depth[:] = np.where(floor, np.minimum(floor_depth, _WALL_DEPTH), _WALL_DEPTH)
    wall = ~floor | (floor_depth >= _WALL_DEPTH)
    c.normals[:] = np.where(wall[..., None], np.float32([0, 0, 1]), np.float32([0, 1, 0]))
    for region in (wall, ~wall):
        tex = _texture(rng, ys, xs)
        shaded = _shade(rng, _colour(rng), tex, c.normals, light)
        c.rgb[region] = shaded[region]
    # Clutter painted on the background: not objects (background in every label).
    for _ in range(rng.integers(2, 7)):
        cy, cx = rng.uniform(0, c.H), rng.uniform(0, c.W)
        ry, rx = rng.uniform(1.5, c.H / 10), rng.uniform(1.5, c.W / 10)
        mask = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
        c.rgb[mask] = rng.uniform(0, 1, 3).astype(np.float32)


def _draw_object(rng, c: _Canvas, cls: int, instance: int, horizon: int, focal: float, light: np.ndarray) -> None:
    H, W = c.H, c.W
    base_y = rng.uniform(horizon + 0.12 * (H - horizon), H + 0.1 * H)
    z = min(_CAMERA_HEIGHT * focal / max(base_y - horizon, 1.0), _WALL_DEPTH - 0.5)
    px_per_m = focal / z
    size = rng.uniform(0.55, 1.1) * px_per_m  # object half-width in pixels
    height = size * rng.uniform(1.2, 2.6)
    cx = rng.uniform(0.05 * W, 0.95 * W)
    y0, y1 = int(max(0, np.floor(base_y - 2 * max(height, size) - 2))), int(min(H, np.ceil(base_y + 1)))
    x0, x1 = int(max(0, np.floor(cx - size - 2))), int(min(W, np.ceil(cx + size + 2)))
    if y1 <= y0 or x1 <= x0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ys += 0.5
    xs += 0.5
    dx = xs - cx
    n = np.zeros(ys.shape + (3,), np.float32)
    bulge = np.zeros(ys.shape, np.float32)  # pixels towards the camera from the object's axis plane
    top = np.zeros(ys.shape, bool)
    if cls == 1:  # sphere resting on the floor
        r = size
        cy = base_y - r
        dy = ys - cy
        d2 = dx ** 2 + dy ** 2
        mask = d2 <= r * r
        dz = np.sqrt(np.maximum(r * r - d2, 0))
        n[..., 0], n[..., 1], n[..., 2] = dx / r, -dy / r, dz / r
        bulge = dz
        top = dy < 0
    elif cls == 2:  # upright cylinder with its top disc seen from above
        r = size
        cap_r = 0.3 * r
        y_top = base_y - height
        side = (np.abs(dx) <= r) & (ys >= y_top) & (ys <= base_y)
        cap = (dx / r) ** 2 + ((ys - y_top) / cap_r) ** 2 <= 1
        mask = side | cap
        u = np.clip(dx / r, -1, 1)
        w = np.sqrt(1 - u ** 2)
        n[..., 0], n[..., 2] = u, w
        n[cap] = (0, 1, 0)
        bulge = w * r
        top = cap
    elif cls == 3:  # box: front face and top face
        half = size
        lid = 0.35 * half
        y_top = base_y - height
        front = (np.abs(dx) <= half) & (ys >= y_top) & (ys <= base_y)
        lid_mask = (np.abs(dx) <= half) & (ys >= y_top - lid) & (ys < y_top)
        mask = front | lid_mask
        n[..., 2] = 1
        n[lid_mask] = (0, 1, 0)
        bulge = np.where(lid_mask, (ys - (y_top - lid)) / lid * half, half).astype(np.float32)
        top = lid_mask
    else:  # cone
        r = size
        y_tip = base_y - height
        t = np.clip((ys - y_tip) / height, 0, 1)  # 0 at the tip, 1 at the base
        halfw = r * t
        mask = (ys >= y_tip) & (ys <= base_y) & (np.abs(dx) <= halfw)
        u = np.clip(dx / np.maximum(halfw, 1e-3), -1, 1)
        w = np.sqrt(1 - u ** 2)
        slope = r / height
        n[..., 0], n[..., 1], n[..., 2] = u, slope, w
        bulge = w * halfw
        top = t < 0.4
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    depth = (z - bulge / px_per_m).astype(np.float32)
    region = (slice(y0, y1), slice(x0, x1))
    nearer = mask & (depth < c.depth[region])
    if not nearer.any():
        return
    tex = _texture(rng, ys, xs)
    rgb = _shade(rng, _colour(rng), tex, n, light)
    c.rgb[region][nearer] = rgb[nearer]
    c.depth[region][nearer] = depth[nearer]
    c.normals[region][nearer] = n[nearer]
    c.semseg[region][nearer] = cls
    c.parts[region][nearer] = np.where(top, 2 * cls - 1, 2 * cls)[nearer]
    c.instance[region][nearer] = instance


def _boundaries(*maps: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour differs in any map: one-pixel outlines."""
    edge = np.zeros(maps[0].shape, bool)
    for m in maps:
        edge[:, :-1] |= m[:, :-1] != m[:, 1:]
        edge[:-1, :] |= m[:-1, :] != m[1:, :]
    return edge


def synthetic_scene(split: str, index: int, image_size: Tuple[int, int] = (128, 256)) -> Dict[str, np.ndarray]:
    """Scene ``index`` of ``split`` ('train', 'val' or 'test') as numpy arrays (see the module doc)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    H, W = int(image_size[0]), int(image_size[1])
    if H < 16 or W < 16 or H > 4096 or W > 4096:
        raise ValueError(f"image_size must be between 16 and 4096 pixels per side, got {image_size!r}")
    rng = np.random.default_rng([SPLIT_SEEDS[split], int(index)])
    c = _Canvas(H, W)
    focal = _FOCAL * W / 256
    horizon = int(rng.uniform(0.3, 0.55) * H)
    light = rng.normal(size=3).astype(np.float32)
    light[1], light[2] = abs(light[1]) + 0.5, abs(light[2]) + 0.8
    light /= np.linalg.norm(light)
    _background(rng, c, horizon, focal, light)
    objects = [(rng.uniform(), int(rng.integers(1, len(SYNTHETIC_CLASSES)))) for _ in range(rng.integers(2, 6))]
    for instance, (_, cls) in enumerate(sorted(objects), start=1):
        _draw_object(rng, c, cls, instance, horizon, focal, light)
    rgb = c.rgb * rng.uniform(0.7, 1.3) + rng.normal(0, 0.02, c.rgb.shape).astype(np.float32)
    pixels = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return {
        "pixels": pixels,
        "semseg": c.semseg.astype(np.int64),
        "human_parts": c.parts.astype(np.int64),
        "sal": (c.semseg > 0).astype(np.float32),
        "normals": c.normals.transpose(2, 0, 1).copy(),
        "edge": _boundaries(c.instance, c.parts).astype(np.float32),
        "depth": c.depth,
    }


def _to_item(scene: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    pixels = np.array(scene["pixels"], dtype=np.uint8)  # a writable copy
    item = {"image": normalise(pixels), "pixels": torch.from_numpy(pixels)}
    for task in ("semseg", "human_parts", "sal", "normals", "edge", "depth"):
        if task in scene:
            item[task] = torch.from_numpy(np.ascontiguousarray(scene[task]))
    return item


class SyntheticScenes(torch.utils.data.Dataset):
    """``size`` seeded scenes of a split: train, val or test (disjoint seed streams)."""

    tasks = tuple(name for name, _ in SYNTHETIC_TASKS)

    def __init__(self, split: str = "test", size: int = 100, image_size: Sequence[int] = (128, 256)):
        if split not in SPLIT_SEEDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.split, self.size, self.image_size = split, size, (int(image_size[0]), int(image_size[1]))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(f"scene {index} out of range (dataset of {self.size})")
        return _to_item(synthetic_scene(self.split, index, self.image_size))

    def item_name(self, index: int) -> str:
        return f"{self.split} scene {index}"

    def __repr__(self) -> str:
        return f"SyntheticScenes(split={self.split!r}, size={self.size}, image_size={self.image_size})"


# --- Real datasets in M3ViT's folder layouts ---------------------------------------------------


MAX_SPLIT_BYTES = 16 << 20  # a split file lists image ids: PASCAL-Context's train split is ~100 KB


def _read_split(path: Path, root: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found")
    _regular_file_inside(root, path)
    if path.stat().st_size > MAX_SPLIT_BYTES:
        raise ValueError(f"split file {path} is over {MAX_SPLIT_BYTES >> 20} MiB; it should list image ids")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"split file {path} is not text ({exc})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split file {path} lists no images")
    for image_id in ids:  # an id names a file in the dataset's folders, never a path
        if "/" in image_id or "\\" in image_id or image_id in (".", "..") or "\x00" in image_id:
            raise ValueError(f"split file {path}: {image_id[:60]!r} is not an image id (a path?)")
    return ids


# Pixels an image or label file may declare: PASCAL's and NYUD's are about 0.2-0.3 M; this leaves
# room for any photo a dataset holds and refuses the header of a decompression bomb before decoding.
MAX_FILE_PIXELS = 40_000_000


def _opened_image(path: Path):
    from PIL import Image

    im = Image.open(path)
    W, H = im.size
    if W * H > MAX_FILE_PIXELS:
        im.close()
        raise ValueError(f"it declares {W} x {H} pixels, more than the {MAX_FILE_PIXELS:,} a dataset image may have")
    return im


def _load_rgb(path: Path) -> np.ndarray:
    with _opened_image(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _load_png(path: Path) -> np.ndarray:
    with _opened_image(path) as im:
        return np.asarray(im)


def _load_npy(path: Path) -> np.ndarray:
    """np.load, after checking that the header's shape and dtype describe exactly the bytes the file holds."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
        if dtype.hasobject:
            raise ValueError("it holds Python objects (loading would unpickle them), not numbers")
        count = int(np.prod(shape, dtype=object))
        data = path.stat().st_size - f.tell()
        if count * dtype.itemsize != data:
            raise ValueError(f"its header declares {shape} x {dtype} ({count * dtype.itemsize} bytes), the file holds {data}")
    return np.load(path, allow_pickle=False)


def _resize(array: np.ndarray, size: Tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize [H, W] or [H, W, C] to ``size`` (H, W): nearest for labels, bilinear for the rest."""
    from PIL import Image

    if array.shape[:2] == tuple(size):
        return array
    H, W = size
    if array.ndim == 3:
        return np.stack([_resize(array[..., k], size, nearest) for k in range(array.shape[2])], axis=-1)
    im = Image.fromarray(array.astype(np.float32), mode="F")
    out = np.asarray(im.resize((W, H), Image.NEAREST if nearest else Image.BILINEAR), dtype=np.float32)
    return out.astype(array.dtype) if nearest else out


def _resize_image(pixels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """M3ViT's FixedResize of an image (cubic, then uint8 truncation with its wrap-around), as
    ``imaging.preprocess`` does before normalising."""
    import torch.nn.functional as F

    if pixels.shape[:2] == tuple(size):
        return pixels
    rgb = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None]
    rgb = F.interpolate(rgb, size=tuple(size), mode="bicubic", align_corners=False)
    wrapped = torch.remainder(torch.trunc(rgb).to(torch.int64), 256).to(torch.uint8)
    return wrapped[0].permute(1, 2, 0).contiguous().numpy()


class _FolderDataset(torch.utils.data.Dataset):
    def __init__(self, root, split: str, image_size: Sequence[int], tasks: Optional[Sequence[str]]):
        self.root = Path(os.path.abspath(root))  # the same folder for a Dask worker in another directory
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} not found")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        unknown = set(tasks or ()) - set(self.tasks)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no task(s) {sorted(unknown)}; it has {list(self.tasks)}")
        self.wanted = tuple(tasks) if tasks else self.tasks
        self.split = split

    def __len__(self) -> int:
        return len(self.ids)

    def item_name(self, index: int) -> str:
        """The item's image file, which names it in errors and in a run's skipped list."""
        return str(self.root / self.image_folder / f"{self.ids[index]}.jpg")

    def _image(self, folder: str, image_id: str) -> np.ndarray:
        path = self.root / folder / f"{image_id}.jpg"
        return _guarded("an image", path, lambda: _load_rgb(path), self.root)

    def _finish(self, pixels: np.ndarray, labels: Dict[str, np.ndarray], image_id: str) -> Dict[str, torch.Tensor]:
        H, W = pixels.shape[:2]
        for task, value in labels.items():
            want = (H, W, 3) if task == "normals" else (H, W)
            if value.shape != want or np.iscomplexobj(value) or not np.isfinite(value).all():
                raise ValueError(f"{self.root}: the {task} label of {image_id!r} has shape {value.shape} "
                                 f"(the image is {H} x {W}, expected {want}), complex or non-finite values")
            # Class ids are 0 .. 254 with 255 = ignore (8-bit label PNGs): anything else is a broken label,
            # named here rather than as an out-of-range class in evaluate.
            if task in ("semseg", "human_parts") and value.size and (value.min() < 0 or value.max() > IGNORE):
                raise ValueError(f"{self.root}: the {task} label of {image_id!r} holds class ids from {value.min()} "
                                 f"to {value.max()}; ids are 0 .. 254, with 255 = ignore")
        size = self.image_size
        scene = {"pixels": _resize_image(pixels, size)}
        for task, value in labels.items():
            if task == "normals":
                n = _resize(value, size, nearest=False)
                ignore = np.any(_resize(value, size, nearest=True) == IGNORE, axis=-1)
                norm = np.linalg.norm(n.astype(np.float64), axis=-1, keepdims=True)  # float32 squares overflow
                n = np.where(norm > 1e-6, n / np.maximum(norm, 1e-6), 0.0)
                n[ignore | (norm[..., 0] <= 1e-6)] = IGNORE
                scene[task] = n.transpose(2, 0, 1).astype(np.float32)
            elif task in ("semseg", "human_parts"):
                scene[task] = _resize(value.astype(np.int64), size, nearest=True)
            else:
                scene[task] = _resize(value.astype(np.float32), size, nearest=True)
        return _to_item(scene)


def _regular_file_inside(root: Path, path: Path) -> Path:
    """``path`` resolved, if it is a regular file inside the dataset folder ``root``; else a ValueError
    naming it: a FIFO would block the reader forever, and a link or a split entry (absolute, ``..``)
    that leads outside the folder would read files the dataset does not own."""
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:  # named as the dataset names it, not as a link resolves it
        raise FileNotFoundError(f"{path} not found") from None
    except (OSError, RuntimeError) as exc:  # a link loop, a component that is not a folder
        raise ValueError(f"{path}: cannot resolve it ({exc})") from None
    folder = root.resolve()
    if folder not in resolved.parents:
        raise ValueError(f"{path}: leads to {resolved}, outside the dataset folder {folder}")
    if not stat.S_ISREG(resolved.stat().st_mode):
        raise ValueError(f"{path}: not a regular file (a FIFO, device or folder); a dataset reads regular files only")
    return resolved


def _mat_variable(path: Path, name: str):
    """One variable of a level-5 MAT-file, read with limits (edgemoe.matfile), never with scipy.io."""
    with open(path, "rb") as f:
        data = f.read(MAX_MAT_BYTES + 1)
    variables = read_mat(data)
    if name not in variables:
        raise ValueError(f"it has no variable {name!r} (it has {sorted(variables)[:8]})")
    return variables[name]


def _guarded(what: str, path: Path, load, root: Path):
    """``load()`` of a regular file inside ``root``, with any decoding failure turned into a ValueError
    that names the file."""
    _regular_file_inside(root, path)
    try:
        return load()
    except FileNotFoundError:
        raise
    # What decoders raise on damaged or hostile files: PIL (OSError, SyntaxError, EOFError,
    # struct.error, DecompressionBombError), zlib, edgemoe.matfile and numpy (ValueError), and
    # MemoryError for sizes a header invents.
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, NotImplementedError, SyntaxError,
            EOFError, struct.error, zlib.error, MemoryError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot read it as {what} ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - decoder-specific errors (PIL's own) all mean "not readable"
        if type(exc).__module__.split(".")[0] in ("PIL", "scipy"):
            raise ValueError(f"{path}: cannot read it as {what} ({type(exc).__name__}: {exc})") from None
        raise


class PascalContext(_FolderDataset):
    """PASCAL-Context in M3ViT's PASCAL_MT layout (``JPEGImages/<id>.jpg``, ``ImageSets/Context/<split>.txt``,
    ``semseg/VOC12`` or ``semseg/pascal-context/<id>.png``, ``human_parts/<id>.mat``,
    ``sal_distill/<id>.png``, ``normals_distill/<id>.png``, ``pascal-context/trainval/<id>.mat`` for edges).

    Labels are decoded as M3ViT's loader does: semseg PNG values as they are (255 ignore); saliency
    PNG / 255 > 0.5; normals PNG 2 v / 255 - 1; edges from the ``LabelMap`` class boundaries
    (Laplacian != 0, thinned); human parts from the person objects' part masks mapped to M3ViT's six
    parts (an image without parts is ignored). Differences: images and labels are resized to the
    model's input size (images as M3ViT's ``FixedResize``, labels nearest) and evaluated there, not
    at the original size; normals are evaluated on every pixel (M3ViT masks classes outside its NYU
    class list, tables we do not ship)."""

    image_folder = "JPEGImages"
    tasks = ("semseg", "human_parts", "sal", "normals", "edge")
    PART_GROUPS = {1: ("hair", "head", "lear", "rear", "lebrow", "rebrow", "leye", "reye", "mouth", "nose"),
                   2: ("torso", "neck"), 3: ("luarm", "ruarm"), 4: ("llarm", "rlarm", "lhand", "rhand"),
                   5: ("luleg", "ruleg"), 6: ("llleg", "rlleg", "lfoot", "rfoot")}
    PERSON = 15

    def __init__(self, root, split: str = "val", image_size: Sequence[int] = (512, 512), tasks=None):
        super().__init__(root, split, image_size, tasks)
        self.ids = _read_split(self.root / "ImageSets" / "Context" / f"{split}.txt", self.root)

    def _semseg(self, i: str) -> np.ndarray:
        for sub in ("VOC12", "pascal-context"):
            p = self.root / "semseg" / sub / f"{i}.png"
            if p.is_file():
                return _guarded("a label PNG", p, lambda: _load_png(p).astype(np.int64), self.root)
        raise FileNotFoundError(f"no semseg label for {i} under {self.root / 'semseg'}")

    def _label_map(self, i: str) -> np.ndarray:
        path = self.root / "pascal-context" / "trainval" / f"{i}.mat"
        if not path.is_file():
            raise FileNotFoundError(f"no PASCAL-Context label map for {i} at {path}")
        label_map = _guarded("a PASCAL-Context label map", path, lambda: _mat_variable(path, "LabelMap"), self.root)
        if not isinstance(label_map, np.ndarray) or label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.number):
            raise ValueError(f"{path}: LabelMap must be a 2-D numeric array, got "
                             f"{getattr(label_map, 'dtype', type(label_map).__name__)} {getattr(label_map, 'shape', '')}")
        return label_map

    def _edge(self, i: str, shape) -> np.ndarray:
        from scipy.ndimage import laplace
        from skimage.morphology import thin

        label_map = self._label_map(i)
        if label_map.shape != tuple(shape) or not np.isfinite(label_map).all():
            raise ValueError(f"{self.root / 'pascal-context' / 'trainval' / f'{i}.mat'}: LabelMap is "
                             f"{label_map.shape[0]} x {label_map.shape[1]} (the image is {shape[0]} x {shape[1]}) "
                             "or holds non-finite values")
        lap = laplace(label_map.astype(np.float64))
        return thin(np.abs(lap) > 0).astype(np.float32)

    def _human_parts(self, i: str, shape) -> np.ndarray:
        path = self.root / "human_parts" / f"{i}.mat"
        target = np.zeros(shape, np.int64)
        if path.is_file():
            names = {name: part for part, group in self.PART_GROUPS.items() for name in group}

            def paint():
                # Pascal-Part: anno.objects(k).class_ind, anno.objects(k).parts(j).part_name / .mask
                anno = _mat_variable(path, "anno")
                objects = anno.items[0].get("objects") if isinstance(anno, MatStruct) and anno.items else None
                if not isinstance(objects, MatStruct):
                    raise ValueError("anno has no struct array 'objects'")
                for obj in objects.items:
                    class_ind, parts = obj.get("class_ind"), obj.get("parts")
                    if not isinstance(class_ind, np.ndarray) or class_ind.size == 0 or not isinstance(parts, MatStruct):
                        continue
                    if class_ind.ravel()[0] != self.PERSON:
                        continue
                    for part in parts.items:
                        name, mask = part.get("part_name"), part.get("mask")
                        if isinstance(name, str) and name in names and isinstance(mask, np.ndarray) \
                                and mask.shape == shape:
                            target[mask.astype(bool)] = names[name]

            _guarded("a PASCAL human-parts annotation", path, paint, self.root)
        if not target.any():
            target[:] = IGNORE  # no parts: ignored, as M3ViT does
        return target

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        i = self.ids[index]
        pixels = self._image(self.image_folder, i)
        labels = {}
        if "semseg" in self.wanted:
            labels["semseg"] = self._semseg(i)
        if "human_parts" in self.wanted:
            labels["human_parts"] = self._human_parts(i, pixels.shape[:2])
        if "sal" in self.wanted:
            p = self.root / "sal_distill" / f"{i}.png"
            sal = _guarded("a saliency PNG", p, lambda: _load_png(p).astype(np.float32), self.root)
            labels["sal"] = (sal / 255 > 0.5).astype(np.float32)
        if "normals" in self.wanted:
            p = self.root / "normals_distill" / f"{i}.png"
            rgb = _guarded("a normals PNG", p, lambda: _load_png(p), self.root)
            if rgb.ndim != 3 or rgb.shape[2] < 3:
                raise ValueError(f"{p}: a normals PNG must be RGB, got shape {rgb.shape}")
            labels["normals"] = rgb[..., :3].astype(np.float32) * 2 / 255 - 1
        if "edge" in self.wanted:
            labels["edge"] = self._edge(i, pixels.shape[:2])
        return self._finish(pixels, labels, i)


class NYUD(_FolderDataset):
    """NYUD-v2 in M3ViT's NYUD_MT layout (``images/<id>.jpg``, ``gt_sets/<split>.txt``,
    ``segmentation/<id>.png``, ``depth/<id>.npy``, ``normals/<id>.npy``, ``edge/<id>.npy``).

    As M3ViT's loader: semseg 0 -> 255 (ignore) and 1..40 -> 0..39; depth as stored (metres), 0 =
    no measurement; normals as stored (unit vectors; zero vectors ignored). Images and labels are
    resized to the model's input size (NYUD's 480 x 640 needs none)."""

    image_folder = "images"
    tasks = ("semseg", "normals", "edge", "depth")

    def __init__(self, root, split: str = "val", image_size: Sequence[int] = (480, 640), tasks=None):
        super().__init__(root, split, image_size, tasks)
        self.ids = _read_split(self.root / "gt_sets" / f"{split}.txt", self.root)

    def _npy(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        # data only: never unpickles (an object array is refused by numpy); the header's shape is
        # checked against the file's size before any memory is taken for it
        array = _guarded("a numeric .npy array", path, lambda: _load_npy(path), self.root)
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number) \
                or np.issubdtype(array.dtype, np.complexfloating):
            raise ValueError(f"{path}: expected a real numeric array, got {getattr(array, 'dtype', type(array))}")
        return array

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        i = self.ids[index]
        pixels = self._image(self.image_folder, i)
        labels = {}
        if "semseg" in self.wanted:
            p = self.root / "segmentation" / f"{i}.png"
            raw = _guarded("a label PNG", p, lambda: _load_png(p).astype(np.int64), self.root)
            labels["semseg"] = np.where(raw == 0, IGNORE, raw - 1)
        if "depth" in self.wanted:
            labels["depth"] = self._npy(self.root / "depth" / f"{i}.npy").astype(np.float32)
        if "normals" in self.wanted:
            labels["normals"] = self._npy(self.root / "normals" / f"{i}.npy").astype(np.float32)
        if "edge" in self.wanted:
            labels["edge"] = self._npy(self.root / "edge" / f"{i}.npy").astype(np.float32)
        return self._finish(pixels, labels, i)


def open_dataset(spec: str, image_size: Sequence[int], tasks=None):
    """``synthetic:N`` (the first N test scenes), ``pascal:DIR`` or ``nyud:DIR`` (their val split)."""
    kind, _, arg = str(spec).partition(":")
    if kind == "synthetic":
        try:
            n = int(arg or "100")
        except ValueError:
            raise ValueError(f"--data synthetic:N needs a count, got {spec!r}") from None
        return SyntheticScenes("test", n, image_size)
    if kind == "pascal" and arg:
        return PascalContext(arg, "val", image_size, tasks)
    if kind == "nyud" and arg:
        return NYUD(arg, "val", image_size, tasks)
    raise ValueError(f"--data must be synthetic:N, pascal:DIR or nyud:DIR, got {spec!r}")
