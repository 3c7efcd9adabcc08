"""make bench: PASCAL ViT-S 512x512 single-task forward (batch 1) on the native CPU backend and on the
PyTorch reference, in one process, with the machine's measured fp32 GEMM peak for scale."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch

from . import _C
from .flops import backbone_flops, task_flops
from .model import Model
from .progress import Progress
from .reference import M3ViT
from .synthetic import cached_checkpoint, random_images


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _median_seconds(fn, repeats: int, label: str) -> float:
    fn()  # warm-up
    bar = Progress(repeats, label)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        bar.step(f"{times[-1] * 1e3:.0f} ms")
    return statistics.median(times)


def bench(cache: Path, repeats: int = 5, torch_repeats: int = 3, threads: int = 2) -> int:
    task = "semseg"
    ckpt = cached_checkpoint("pascal-vit-s", cache)
    model = Model.from_checkpoint(ckpt, num_threads=threads)
    reference = M3ViT.from_checkpoint(ckpt)
    torch.set_num_threads(threads)
    cfg = model.config
    x = random_images(cfg, 1)

    peak = _C.gemm_peak_gflops(2048, 10, threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch_gemm = 2 * 2048 ** 3 / _median_seconds(lambda: a @ b, 5, "torch GEMM 2048^3") / 1e9
    peak = max(peak, torch_gemm)

    t_cpu = _median_seconds(lambda: model(x, task=task), repeats, "edgemoe cpu forward")
    t_backbone = _median_seconds(lambda: model.features(x, task), repeats, "edgemoe cpu backbone")
    with torch.no_grad():
        t_torch = _median_seconds(lambda: reference(x, task), torch_repeats, "PyTorch forward")

    flops = task_flops(cfg, task)
    print()
    print(f"machine: {_cpu_name()}, {threads} threads; torch {torch.__version__}; oneDNN {_C.build_info()['onednn']}")
    print(f"model: PASCAL ViT-S 512x512, 16 experts top-4, task {task}, batch 1; "
          f"{flops / 1e9:.1f} GFLOP per forward ({backbone_flops(cfg) / 1e9:.1f} backbone)")
    print(f"fp32 GEMM peak measured here: {peak:.0f} GFLOP/s (oneDNN matmul 2048^3; torch.mm {torch_gemm:.0f})")
    print()
    print("| implementation | median latency | speed-up vs PyTorch | GFLOP/s | % of GEMM peak |")
    print("|---|---:|---:|---:|---:|")
    for name, t in (("PyTorch 1.13 reference", t_torch), ("edgemoe cpu", t_cpu)):
        print(f"| {name} | {t * 1e3:.0f} ms | {t_torch / t:.1f}x | {flops / t / 1e9:.0f} | {100 * flops / t / 1e9 / peak:.0f} % |")
    print(f"| edgemoe cpu, backbone only | {t_backbone * 1e3:.0f} ms | | {backbone_flops(cfg) / t_backbone / 1e9:.0f} | "
          f"{100 * backbone_flops(cfg) / t_backbone / 1e9 / peak:.0f} % |")
    return 0
