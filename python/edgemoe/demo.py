"""make demo: a seeded PASCAL ViT-S M3ViT checkpoint (created once, cached), a sample photo from
Debian's python3-skimage, all five tasks on the native backend, PNGs, and agreement with PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .cli import run_tasks
from .imaging import sample_photo
from .model import Model
from .progress import Progress
from .reference import M3ViT
from .synthetic import cached_checkpoint


def demo(out_dir: Path, cache: Path, backend: str = "cpu") -> int:
    ckpt_dir = cache / "pascal-vit-s-seed0" / "checkpoint.pth.tar"
    if not (ckpt_dir / "0.pth").exists():
        bar = Progress(1, "creating checkpoint")
        cached_checkpoint("pascal-vit-s", cache)
        bar.step(str(ckpt_dir))
    model = Model.from_checkpoint(ckpt_dir, backend=backend)
    print(f"checkpoint: {ckpt_dir} (seeded weights; M3ViT publishes none)")
    print(model.config)
    photo = sample_photo()
    from .imaging import save_png

    out_dir.mkdir(parents=True, exist_ok=True)
    save_png(out_dir / "input.png", photo)
    model(torch.zeros(1, 3, *model.config.image_size), task=model.tasks[0])  # warm-up: kernel creation, packing
    x, results = run_tasks(model, photo, model.tasks, out_dir)

    reference = M3ViT.from_checkpoint(ckpt_dir)
    torch.set_num_threads(model.num_threads)
    bar = Progress(len(model.tasks), "PyTorch reference")
    rows = []
    for task, (seconds, y) in results.items():
        with torch.no_grad():
            r = reference(x, task)
        bar.step(task)
        rel = ((y - r).abs().max() / r.abs().max()).item()
        ties = reference.near_ties(x, task)
        if task in ("semseg", "human_parts"):
            agree = f"{(y.argmax(1) == r.argmax(1)).float().mean().item() * 100:.3f} % argmax"
        else:
            agree = "-"
        rows.append((task, seconds * 1e3, rel, ties, agree))
    print(f"\n{'task':<12} {'latency (ms)':>12} {'max rel err':>12} {'near ties':>9}  agreement   [backend {model.backend}]")
    for task, ms, rel, ties, agree in rows:
        print(f"{task:<12} {ms:12.1f} {rel:12.2e} {ties:9d}  {agree}")
    if any(r[3] for r in rows):
        print("near ties: routing decisions whose k-th and (k+1)-th gate probabilities differ by < 1e-6; fp32\n"
              "implementations that sum in a different order may route those tokens to the other expert,\n"
              "which shows up as a larger max error confined to those tokens.")
    print(f"\nwrote {', '.join(sorted(p.name for p in out_dir.glob('*.png')))} to {out_dir}/")
    return 0
