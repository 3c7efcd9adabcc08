"""python -m edgemoe {info,run,estimate,evaluate,compare,train,demo,bench,noop-xclbin}"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "edgemoe"


def _fpga_kwargs(args) -> dict:
    return {k: v for k, v in (("xclbin", args.xclbin), ("device", args.device), ("timeout", args.timeout))
            if v is not None}


def _load(args, backend=None, fpga=None):
    """args' checkpoint and model options on `backend` (default args.backend) with the fpga options
    `fpga` (default: all that args gives; the Model refuses them for other backends)."""
    from .model import Model

    size = tuple(args.image_size) if args.image_size else None
    fpga = _fpga_kwargs(args) if fpga is None else fpga
    return Model.from_checkpoint(args.checkpoint, backend=backend or args.backend, top_k=args.top_k,
                                 num_heads=args.num_heads, image_size=size, config=args.config,
                                 num_threads=args.threads, **fpga)


def cmd_noop_xclbin(args):
    """The metadata-only xclbin of m3vit_backbone: a dry run of backend fpga under XRT's noop shim."""
    from . import _C

    if not hasattr(_C, "metadata_xclbin"):
        print("error: this build has no XRT support", file=sys.stderr)
        return 2
    Path(args.out).write_bytes(_C.metadata_xclbin())
    print(f"wrote {args.out}: no bitstream; with XCL_EMULATION_MODE=noop, backend='fpga' runs the whole host flow "
          f"and computes nothing")
    return 0


def cmd_info(args):
    from .info import info

    info(print_it=True, devices=args.devices)
    return 0


def run_tasks(model, image, tasks, out_dir: Path):
    """Run each task on one image, write a PNG per task; returns {task: (seconds, raw output)}."""
    from .imaging import postprocess, preprocess, render, save_png

    out_dir.mkdir(parents=True, exist_ok=True)
    x = preprocess(image, model.config.image_size)
    results = {}
    for task in tasks:
        t0 = time.perf_counter()
        y = model(x, task=task)
        results[task] = (time.perf_counter() - t0, y)
        save_png(out_dir / f"{task}.png", render(task, postprocess(task, y)[0], model.config.out_channels(task)))
    return x, results


def cmd_run(args):
    model = _load(args)
    tasks = args.task or model.tasks
    for t in tasks:
        if t not in model.tasks:
            print(f"error: unknown task {t!r}; this model has {model.tasks}", file=sys.stderr)
            return 2
    _, results = run_tasks(model, args.image, tasks, Path(args.out))
    print(f"{'task':<12} {'latency (ms)':>12}  output")
    for task, (seconds, y) in results.items():
        print(f"{task:<12} {seconds * 1e3:12.1f}  {Path(args.out) / (task + '.png')}  {tuple(y.shape)}")
    return 0


def cmd_estimate(args):
    from .imaging import preprocess

    model = _load(args)
    task = args.task or model.tasks[0]
    if task not in model.tasks:
        print(f"error: unknown task {task!r}; this model has {model.tasks}", file=sys.stderr)
        return 2
    images = preprocess(args.image, model.config.image_size) if args.image else None
    print(model.estimate(board=args.board, images=images, task=task).table(per_stage=not args.summary))
    return 0


def cmd_evaluate(args):
    from .data import open_dataset
    from .evaluation import evaluate, format_results

    if args.backend == "reference":
        model = _reference(args)
        size = model.cfg.image_size
    else:
        model = _load(args)
        size = model.config.image_size
    dataset = open_dataset(args.data, size, args.task)
    results = evaluate(model, dataset, tasks=args.task, batch_size=args.batch_size)
    print(f"{args.backend} on {args.data} ({len(dataset)} images):")
    print(format_results(results))
    return 0


def _reference(args):
    from .reference import M3ViT

    return M3ViT.from_checkpoint(args.checkpoint, top_k=args.top_k, num_heads=args.num_heads,
                                 image_size=tuple(args.image_size) if args.image_size else None, config=args.config)


def cmd_compare(args):
    from .imaging import preprocess, sample_photo
    from .trace import compare

    traces = []
    for backend in args.backends:
        if backend == "reference":
            model = _reference(args)
            config = model.cfg
        else:  # the fpga options belong to its fpga side
            model = _load(args, backend, fpga=_fpga_kwargs(args) if backend == "fpga" else {})
            config = model.config
        task = args.task or config.task_names[0]
        if task not in config.task_names:
            print(f"error: unknown task {task!r}; this model has {list(config.task_names)}", file=sys.stderr)
            return 2
        images = preprocess(args.image if args.image else sample_photo(), config.image_size)
        traces.append(model.trace(images, task))
    result = compare(*traces)
    print(result)
    return 0 if result.first_divergence is None else 3


def cmd_train(args):
    from .train import train

    train(Path(args.out), steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
          max_minutes=args.max_minutes)
    print(f"wrote {args.out} (M3ViT rank-shard checkpoint directory)")
    return 0


def _model_options(p):
    """The model options `run` takes, shared by every command that loads a checkpoint."""
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--num-heads", type=int, dest="num_heads")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), dest="image_size")
    p.add_argument("--config", help="M3ViT YAML config supplying heads/top-k/image size")
    p.add_argument("--threads", type=int)


def _fpga_options(p):
    """The fpga backend's options, for every command that runs a model."""
    p.add_argument("--xclbin", help="fpga: the .xclbin built by kernels/vitis (default: $EDGEMOE_XCLBIN)")
    p.add_argument("--device", type=int, help="fpga: XRT device index (default 0)")
    p.add_argument("--timeout", type=float, help="fpga: seconds a kernel run may take (default 300)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edgemoe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="version, build options, backends and why any is unavailable")
    p_info.add_argument("--devices", action="store_true",
                        help="also probe the system for FPGA devices through XRT (never done otherwise)")

    run = sub.add_parser("run", help="run a checkpoint on an image, one PNG per task")
    run.add_argument("--checkpoint", required=True, help="M3ViT checkpoint directory or .pth/.pth.tar file")
    run.add_argument("--image", required=True, help="input image (any format PIL reads)")
    run.add_argument("--task", action="append", help="task to run (repeatable; default: all)")
    run.add_argument("--backend", default="cpu")
    run.add_argument("--out", required=True, help="output directory for the PNGs")
    _model_options(run)
    _fpga_options(run)

    est = sub.add_parser("estimate", help="modelled latency and resources of the accelerator on a board")
    est.add_argument("--checkpoint", required=True, help="M3ViT checkpoint directory or .pth/.pth.tar file")
    est.add_argument("--board", default="zcu102", choices=["zcu102", "u280"])
    est.add_argument("--task", help="the task whose gates route the MoE layers (default: the first)")
    est.add_argument("--image", help="input image whose routing sets the MoE load (default: the built-in photo)")
    est.add_argument("--summary", action="store_true", help="totals by unit only, no per-stage rows")
    _model_options(est)
    est.set_defaults(backend="cpu", xclbin=None, device=None, timeout=None)

    ev = sub.add_parser("evaluate", help="task metrics of a checkpoint on a dataset, on any backend or PyTorch")
    ev.add_argument("--checkpoint", help="M3ViT checkpoint (default: the built-in trained synthetic-scenes model)")
    ev.add_argument("--backend", default="cpu", help="cpu, emu, fpga, or reference (PyTorch)")
    ev.add_argument("--data", default="synthetic:100", help="synthetic:N (test scenes), pascal:DIR or nyud:DIR")
    ev.add_argument("--task", action="append", help="task to evaluate (repeatable; default: all the data has)")
    ev.add_argument("--batch-size", type=int, default=8, dest="batch_size")
    _model_options(ev)
    _fpga_options(ev)

    cmp = sub.add_parser("compare", help="layer-by-layer comparison of two backends (or PyTorch) on one image")
    cmp.add_argument("--checkpoint", help="M3ViT checkpoint (default: the built-in trained synthetic-scenes model)")
    cmp.add_argument("--backends", nargs=2, default=["reference", "emu"], metavar=("A", "B"),
                     help="baseline and backend under test: reference (PyTorch), cpu, emu or fpga (default: reference emu)")
    cmp.add_argument("--task", help="the task whose gates and head run (default: the first)")
    cmp.add_argument("--image", help="input image (default: the built-in photo)")
    _model_options(cmp)
    _fpga_options(cmp)

    tr = sub.add_parser("train", help="train the small M3ViT on the built-in synthetic scenes (CPU)")
    tr.add_argument("--out", required=True, help="checkpoint directory to write (M3ViT's rank shards)")
    tr.add_argument("--steps", type=int, default=640)
    tr.add_argument("--batch-size", type=int, default=8, dest="batch_size")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--max-minutes", type=float, dest="max_minutes", help="stop with an error past this time")

    noop = sub.add_parser("noop-xclbin", help="write a metadata-only xclbin for a dry run of the fpga backend")
    noop.add_argument("out", help="output .xclbin path")

    demo = sub.add_parser("demo", help="the main job on a built-in seeded PASCAL ViT-S checkpoint")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--cache", default=str(DEFAULT_CACHE))
    demo.add_argument("--backend", default="cpu")

    bench = sub.add_parser("bench", help="latency of the native backends vs PyTorch")
    bench.add_argument("--cache", default=str(DEFAULT_CACHE))
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--torch-repeats", type=int, default=3)
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--emu-repeats", type=int, default=2, help="runs of the emulated ViT-S backbone (0: skip emu)")

    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return cmd_info(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "estimate":
            return cmd_estimate(args)
        if args.command == "noop-xclbin":
            return cmd_noop_xclbin(args)
        if args.command in ("evaluate", "compare"):
            if args.checkpoint is None:
                from .data import trained_checkpoint, trained_config

                args.checkpoint = str(trained_checkpoint())
                args.config = args.config or str(trained_config())
            return cmd_evaluate(args) if args.command == "evaluate" else cmd_compare(args)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "demo":
            from .demo import demo as run_demo

            return run_demo(Path(args.out), Path(args.cache), args.backend)
        if args.command == "bench":
            from .bench import bench as run_bench

            return run_bench(Path(args.cache), args.repeats, args.torch_repeats, args.threads, args.emu_repeats)
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as exc:  # TimeoutError is an OSError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
