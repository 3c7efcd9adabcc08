"""Run a model over many image files (``python -m edgemoe run``): collect the files, run them in batches
with every task in one call, write one figure per image, and measure throughput."""
from __future__ import annotations

import glob
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .errors import AspectRatioWarning
from .imaging import SEGMENTATION_TASKS, palette, postprocess, preprocess, render, save_png, unnormalise
from .progress import Progress

# Photo formats a folder is scanned for (PIL opens many more, e.g. .h5 or .mpg, that are not photos).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm", ".pnm", ".tga")
GLOB_CHARACTERS = "*?["


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and path.is_file()


def _check_readable(path: Path) -> None:
    """Open the file's header (not its pixels): a non-image fails here, before any model runs."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - reading the header is the check
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def collect_images(specs: Sequence[str], check: bool = True) -> List[Path]:
    """The image files ``specs`` name, in order, each once: a directory gives its photo files sorted by
    name (not its subdirectories), a glob pattern the photo files it matches sorted, a file itself.
    A spec that selects nothing is an error naming it. ``check``: open each file's header now, so a
    file that is no image fails before any model loads (off for --skip-bad, which lists it instead)."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    found, seen = [], set()
    for spec in specs:
        spec = os.fspath(spec)
        path = Path(spec)
        if path.is_dir():
            chosen = sorted(p for p in path.iterdir() if _is_photo(p))
            if not chosen:
                raise ValueError(f"--image {spec}: the directory holds no image files "
                                 f"({', '.join(PHOTO_SUFFIXES[:6])}, ...; subdirectories are not searched)")
        elif path.is_file():
            chosen = [path]
        elif any(c in spec for c in GLOB_CHARACTERS):
            chosen = sorted(p for p in map(Path, glob.glob(spec)) if _is_photo(p))
            if not chosen:
                raise ValueError(f"--image {spec}: the pattern matches no image files")
        else:
            raise ValueError(f"--image {spec}: no such file or directory")
        for p in chosen:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)
    if not found:
        raise ValueError("no images selected: pass --image with a file, a directory or a glob pattern")
    for p in found if check else ():
        _check_readable(p)
    return found


def output_paths(images: Sequence[Path], out_dir: Path, force: bool = False) -> List[Path]:
    """``out_dir/<image name>.png`` per image. Refused: two images with one output name, an output that
    is one of the inputs (even with ``force``), and an existing output unless ``force``."""
    outputs, by_name = [], {}
    inputs = {p.resolve() for p in images}
    for image in images:
        out = out_dir / f"{image.stem}.png"
        if out.name in by_name:
            raise ValueError(f"{by_name[out.name]} and {image} would both be written to {out}; run them with "
                             f"different --out directories")
        by_name[out.name] = image
        if out.resolve() in inputs:
            raise ValueError(f"{out} is an input image; choose another --out directory")
        if out.exists() and not force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite it")
        outputs.append(out)
    return outputs


# --- the figure: input and every task side by side, titled, with a legend per panel --------------

_TITLE_HEIGHT = 16
_LINE_HEIGHT = 14
_GAP = 4
_LEGEND_LINES = 6  # at most; segmentation legends beyond it end with "+N more"
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _text_width(font, text: str) -> int:
    box = font.getbbox(text)
    return box[2] - box[0]


def _segmentation_legend(classes: np.ndarray, num_classes: int, names: Optional[Sequence[str]], width: int, font):
    """Lines of (colour, label) entries for the classes present, most frequent first, packed into ``width``
    pixels; what does not fit in _LEGEND_LINES lines is counted as "+N more"."""
    ids, counts = np.unique(classes, return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    colours = palette(max(num_classes, int(ids.max()) + 1))
    entries = [(tuple(int(v) for v in colours[c]), f"{c} {names[c]}" if names is not None and c < len(names) else str(c))
               for c in order]
    room = width - _text_width(font, "+999 more") - 8  # the last line keeps space for the count
    lines, line, used = [], [], 0
    for shown, (colour, label) in enumerate(entries):
        entry = 13 + _text_width(font, label) + 8
        last_line = len(lines) == _LEGEND_LINES - 1
        if line and used + entry > (room if last_line else width):
            if last_line:
                line.append((None, f"+{len(entries) - shown} more"))
                return lines + [line]
            lines.append(line)
            line, used = [], 0
        line.append((colour, label))
        used += entry
    return lines + [line]


def _colour_bar(task: str, width: int) -> np.ndarray:
    """The panel's colour map from its low to its high end, as render draws it: [8, width, 3]."""
    if task == "depth":  # render stretches depth between its 1st and 99th percentile onto magma
        from matplotlib import colormaps

        ramp = (colormaps["magma"](np.linspace(0, 1, width)[None, :])[..., :3] * 255).astype(np.uint8)
    else:  # sal, edge: 255 * probability
        ramp = render(task, np.linspace(0, 255, width)[None, :])
    return np.repeat(ramp, 8, axis=0)


def figure(pixels: np.ndarray, predictions: Dict[str, np.ndarray], channels: Dict[str, int],
           class_names: Optional[Dict[str, Sequence[str]]] = None) -> np.ndarray:
    """One image's figure (RGB uint8): the input, then each task's prediction (``postprocess`` output for
    one image), side by side, each titled, with a legend under it: class colours for the segmentation
    tasks, the colour scale for saliency, edges and depth, the direction encoding for normals."""
    from PIL import Image, ImageDraw

    font = _font()
    H, W = pixels.shape[:2]
    class_names = class_names or {}
    panels = [("input", pixels, [])]
    for task, pred in predictions.items():
        rgb = render(task, pred, channels[task])
        if task in SEGMENTATION_TASKS:
            legend = _segmentation_legend(pred, channels[task], class_names.get(task), W, font)
        elif task == "normals":
            legend = [[(None, "colour = direction:")], [(None, "R x right, G y up,")], [(None, "B z to camera")]]
        elif task == "depth":
            lo, hi = np.percentile(pred, 1), np.percentile(pred, 99)
            legend = ["bar", [(None, f"{lo:.2f} m"), (None, f"-> {hi:.2f} m")]]
        else:
            legend = ["bar", [(None, "0"), (None, "-> 1 (probability)")]]
        panels.append((task, rgb, legend))
    legend_height = _GAP + max(len(legend) for _, _, legend in panels) * _LINE_HEIGHT + _GAP
    canvas = Image.new("RGB", (len(panels) * W + (len(panels) - 1) * _GAP, _TITLE_HEIGHT + H + legend_height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    for k, (title, rgb, legend) in enumerate(panels):
        x0 = k * (W + _GAP)
        draw.text((x0 + 2, 2), title, fill=_BLACK, font=font)
        canvas.paste(Image.fromarray(np.ascontiguousarray(rgb)), (x0, _TITLE_HEIGHT))
        y = _TITLE_HEIGHT + H + _GAP
        for line in legend:
            if line == "bar":
                canvas.paste(Image.fromarray(np.ascontiguousarray(_colour_bar(title, W))), (x0, y + 3))
                y += _LINE_HEIGHT
                continue
            x = x0 + 2
            for colour, label in line:
                if colour is not None:
                    draw.rectangle([x, y + 2, x + 9, y + 11], fill=colour, outline=_BLACK)
                    x += 13
                draw.text((x, y + 1), label, fill=_BLACK, font=font)
                x += _text_width(font, label) + 8
            y += _LINE_HEIGHT
    return np.asarray(canvas)


# --- the run ------------------------------------------------------------------------------------

@dataclass
class RunReport:
    """What a run did and how fast: model time per batch (the warm-up call excluded), wall time overall."""
    backend: str
    tasks: List[str]
    batch_size: int
    warmup_seconds: float
    batches: List[tuple] = field(default_factory=list)  # (images, model seconds)
    wall_seconds: float = 0.0
    stretched: int = 0  # images whose aspect ratio the resize changed
    outputs: List[Path] = field(default_factory=list)
    skipped: list = field(default_factory=list)  # edgemoe.evaluation.SkippedItem per image left out (skip_bad)
    workers: int = 0  # Dask workers of a distributed run; 0: this process

    @property
    def images(self) -> int:
        return sum(n for n, _ in self.batches)

    @property
    def model_seconds(self) -> float:
        return sum(s for _, s in self.batches)

    def merge(self, other: "RunReport", offset: int = 0) -> "RunReport":
        """Add a shard's report; its skipped items' indices are within the shard, so ``offset`` moves them."""
        from dataclasses import replace

        self.warmup_seconds += other.warmup_seconds
        self.batches += other.batches
        self.stretched += other.stretched
        self.outputs += other.outputs
        self.skipped += [replace(s, index=s.index + offset) for s in other.skipped]
        return self

    def format(self) -> str:
        n, seconds = self.images, self.model_seconds
        where = f" ({self.workers} Dask workers; model time summed over them)" if self.workers else ""
        lines = [f"{n} image{'s' * (n != 1)} on {self.backend}{where}, tasks {', '.join(self.tasks)} in one call "
                 f"per batch of up to {self.batch_size}"]
        if n:
            full = [s for k, s in self.batches if k == self.batch_size] or [s for _, s in self.batches]
            size = self.batch_size if any(k == self.batch_size for k, _ in self.batches) else self.batches[0][0]
            lines += [f"warm-up (first call per batch size, not counted below): {self.warmup_seconds * 1e3:.1f} ms",
                      f"model: {n / seconds:.1f} images/s, {seconds * 1e3 / n:.1f} ms per image; per batch of {size}: "
                      f"median {statistics.median(full) * 1e3:.1f} ms (min {min(full) * 1e3:.1f}, max "
                      f"{max(full) * 1e3:.1f}, {len(full)} batch{'es' * (len(full) != 1)})",
                      f"end to end (reading, resizing, model, writing figures): {n / self.wall_seconds:.1f} images/s"]
        if self.stretched:
            lines.append(f"note: {self.stretched} of {n} images were stretched to the model's input shape (aspect "
                         f"ratio changed by more than 1 %); crop them first to avoid the distortion")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable image{'s' * (len(self.skipped) != 1)} (--skip-bad):")
            lines += [f"  {s}" for s in self.skipped]
        return "\n".join(lines)


def _read_batch(paths: Sequence[Path], size, skip_bad: bool, report: RunReport, first_index: int):
    """(tensor of the images that read, their positions in ``paths``); a file that fails raises naming it
    (and the worker), or with ``skip_bad`` is added to ``report.skipped``."""
    from .distributed import current_worker_address
    from .evaluation import SkippedItem

    tensors, kept = [], []
    for k, path in enumerate(paths):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AspectRatioWarning)
            try:
                tensors.append(preprocess(path, size))
            except (OSError, ValueError) as exc:
                worker = current_worker_address()
                if not skip_bad:
                    where = f"worker {worker}: " if worker else ""
                    raise ValueError(f"{where}cannot read image {path}: {exc}") from None
                report.skipped.append(SkippedItem.of(first_index + k, str(path), exc, worker))
                continue
        kept.append(k)
        report.stretched += sum(issubclass(w.category, AspectRatioWarning) for w in caught)
        for w in caught:  # anything else still reaches the user
            if not issubclass(w.category, AspectRatioWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return (torch.cat(tensors) if tensors else None), kept


def run_batches(model, images: Sequence[Path], outputs: Sequence[Path], tasks: Sequence[str], batch_size: int = 8,
                class_names: Optional[Dict[str, Sequence[str]]] = None, skip_bad: bool = False,
                on_batch=None) -> RunReport:
    """The loop of a run: ``images`` in batches through ``model``, ``figure`` of image i written to
    ``outputs[i]``; in this process, or as one shard on a Dask worker. A RunReport of this part."""
    tasks = list(tasks)
    size = model.config.image_size
    channels = {t: model.config.out_channels(t) for t in tasks}
    start = time.perf_counter()
    report = RunReport(model.backend, tasks, batch_size, warmup_seconds=0.0)
    warmed = set()
    for first in range(0, len(images), batch_size):
        paths = images[first:first + batch_size]
        x, kept = _read_batch(paths, size, skip_bad, report, first)
        if x is not None:
            if len(kept) not in warmed:  # a batch size's first call creates its primitives: not a latency
                t0 = time.perf_counter()
                model(x, tasks=tasks)
                report.warmup_seconds += time.perf_counter() - t0
                warmed.add(len(kept))
            t0 = time.perf_counter()
            out = model(x, tasks=tasks)
            report.batches.append((len(kept), time.perf_counter() - t0))
            predictions = {t: postprocess(t, out[t]) for t in tasks}
            for i, k in enumerate(kept):
                path = outputs[first + k]
                save_png(path, figure(unnormalise(x[i]), {t: predictions[t][i] for t in tasks}, channels, class_names))
                report.outputs.append(path)
        if on_batch:
            on_batch(len(paths))
    report.wall_seconds = time.perf_counter() - start
    return report


def run_images(model, images: Sequence[Path], outputs: Sequence[Path], tasks: Sequence[str], batch_size: int = 8,
               class_names: Optional[Dict[str, Sequence[str]]] = None, progress: bool = True, *, client=None,
               skip_bad: bool = False) -> RunReport:
    """Run ``model`` (an edgemoe.Model) on every image file, ``batch_size`` at a time with all ``tasks`` in one
    call (the blocks before the first MoE layer run once per batch), and write ``figure`` of image i to
    ``outputs[i]``. The first call of each batch size warms the backend up (thread pools, caches, oneDNN
    primitives for that size) and is timed apart from the batches. ``client``: a dask.distributed.Client
    whose workers read the files and write the figures (edgemoe.distributed). ``skip_bad``: an image that
    cannot be read is listed in the report's ``skipped`` instead of stopping the run."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(images) != len(outputs) or not images:
        raise ValueError("run_images needs one output path per image, and at least one image")
    if client is not None:
        from .distributed import run_on_client

        return run_on_client(client, model, list(images), list(outputs), tasks, batch_size, class_names, skip_bad,
                             progress)
    bar = Progress(len(images), f"run {model.backend}", unit="images") if progress else None
    return run_batches(model, images, outputs, tasks, batch_size, class_names, skip_bad,
                       on_batch=(lambda n: bar.step(count=n)) if bar else None)
