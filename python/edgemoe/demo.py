"""make demo: the built-in trained M3ViT (a small model trained on the synthetic multi-task scenes,
``edgemoe.train``) on a few test scenes and on a sample photo from Debian's python3-skimage, all six
tasks on the native backend; one PNG per image with the input, each task's prediction and its
ground truth; task metrics of the backend, of PyTorch and of a trivial baseline on test scenes; and
agreement with PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import SyntheticScenes, trained_checkpoint
from .evaluation import evaluate, routing_statistics, trivial_baseline
from .imaging import postprocess, render, render_target, sample_input, save_png, unnormalise
from .metrics import METRICS, format_metric
from .model import Model
from .progress import Progress
from .reference import M3ViT

DEMO_SCENES = 3       # test scenes drawn as PNGs
METRIC_SCENES = 32    # test scenes the printed metrics are computed on


def _panel(model: Model, x: torch.Tensor, pixels: np.ndarray, item=None) -> np.ndarray:
    """Rows: input, then per task its prediction and (when known) its ground truth side by side."""
    H, W = pixels.shape[:2]
    blank = np.full((H, W, 3), 255, np.uint8)
    rows = [np.concatenate([pixels, blank], axis=1)]
    outputs = model(x, tasks=model.tasks)
    for task in model.tasks:
        ch = model.config.out_channels(task)
        pred = render(task, postprocess(task, outputs[task])[0], ch)
        truth = render_target(task, item[task], ch) if item is not None and task in item else blank
        rows.append(np.concatenate([pred, truth], axis=1))
    sep = np.full((2, 2 * W, 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (row, sep)][:-1], axis=0)


def demo(out_dir: Path, cache: Path, backend: str = "cpu") -> int:
    ckpt = trained_checkpoint()
    model = Model.pretrained(backend=backend)
    print(f"checkpoint: {ckpt} (trained on the built-in synthetic scenes: python -m edgemoe train)")
    print(model.config)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = model.config.image_size

    scenes = SyntheticScenes("test", METRIC_SCENES, size)
    for i in range(DEMO_SCENES):
        item = scenes[i]
        save_png(out_dir / f"scene{i}.png", _panel(model, item["image"][None], item["pixels"].numpy(), item))
    photo = sample_input(size)
    shown = unnormalise(photo[0])
    save_png(out_dir / "photo.png", _panel(model, photo, shown))
    print(f"wrote {', '.join(sorted(p.name for p in out_dir.glob('*.png')))} to {out_dir}/ "
          f"(rows: input, then per task prediction | ground truth; tasks {', '.join(model.tasks)})")

    reference = M3ViT.pretrained()
    torch.set_num_threads(model.num_threads)
    print(f"\ntask metrics on {METRIC_SCENES} test scenes:")
    ours = evaluate(model, scenes)
    theirs = evaluate(reference, scenes)
    base = trivial_baseline(scenes, channels=model.config.out_channels)
    print(f"{'task':<12} {'metric':<32} {'trivial':>9} {'PyTorch':>9} {backend:>9}")
    for task in model.tasks:
        name, unit, _ = METRICS[task]
        label = f"{name} ({unit})" if unit else name
        print(f"{task:<12} {label:<32} {base[task]:9.3f} {theirs[task]:9.3f} {ours[task]:9.3f}")

    x = torch.stack([scenes[i]["image"] for i in range(4)])
    outputs = model(x, tasks=model.tasks)
    bar = Progress(len(model.tasks), "PyTorch agreement")
    rows = []
    for task in model.tasks:
        with torch.no_grad():
            r = reference(x, task)
        bar.step(task)
        y = outputs[task]
        rel = ((y - r).abs().max() / r.abs().max()).item()
        rows.append((task, rel, reference.near_ties(x, task)))
    print(f"\n{'task':<12} {'max rel err vs PyTorch':>22} {'near ties':>9}   [backend {model.backend}, 4 scenes]")
    for task, rel, ties in rows:
        print(f"{task:<12} {rel:22.2e} {ties:9d}")

    stats = routing_statistics(reference, SyntheticScenes("test", 8, size))
    print("\nrouting per task (PyTorch, 8 test scenes): the two most used experts of each MoE layer and their share "
          "of the token slots")
    for task, layers in stats.items():
        cells = []
        for layer, share in layers.items():
            top = np.argsort(share)[::-1][:2]
            cells.append(f"block {layer}: e{top[0]} {share[top[0]] * 100:.0f} %, e{top[1]} {share[top[1]] * 100:.0f} %")
        print(f"{task:<12} " + "; ".join(cells))
    return 0
