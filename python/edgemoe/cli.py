"""python -m edgemoe {info,run,estimate,evaluate,compare,train,demo,bench,noop-xclbin}"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "edgemoe"
BACKENDS = ("cpu", "emu", "fpga")
BUILTIN = "the built-in trained model, edgemoe.data.trained_checkpoint(): a small M3ViT for 128 x 256 synthetic scenes"


def _fpga_kwargs(args) -> dict:
    return {k: v for k, v in (("xclbin", args.xclbin), ("device", args.device), ("timeout", args.timeout),
                              ("heads", getattr(args, "heads", None)), ("precision", getattr(args, "precision", None)))
            if v is not None}


def _use_builtin_checkpoint(args) -> None:
    """--checkpoint defaults to the built-in trained model, loaded with its own config (unless --config)."""
    args.builtin = args.checkpoint is None
    if args.builtin:
        from .data import trained_checkpoint, trained_config

        args.checkpoint = str(trained_checkpoint())
        args.config = args.config or str(trained_config())


def _load(args, backend=None, fpga=None):
    """args' checkpoint and model options on `backend` (default args.backend) with the fpga options
    `fpga` (default: all that args gives; the Model refuses them for other backends)."""
    from .model import Model

    size = tuple(args.image_size) if args.image_size else None
    fpga = _fpga_kwargs(args) if fpga is None else fpga
    return Model.from_checkpoint(args.checkpoint, backend=backend or args.backend, top_k=args.top_k,
                                 num_heads=args.num_heads, image_size=size, config=args.config,
                                 num_threads=args.threads, **fpga)


def _dry_run(backend: str) -> bool:
    """fpga under XRT's noop shim: the whole host flow runs, the device computes nothing."""
    return backend == "fpga" and os.environ.get("XCL_EMULATION_MODE") == "noop"


DRY_RUN_NOTE = ("dry run: XCL_EMULATION_MODE=noop, so XRT's noop shim ran the host flow and the device computed "
                "nothing; the outputs are not computed (they show whatever the device buffers held)")


def cmd_noop_xclbin(args):
    """The metadata-only xclbin of m3vit_backbone: a dry run of backend fpga under XRT's noop shim."""
    from . import _C

    if not hasattr(_C, "metadata_xclbin"):
        print("error: this build has no XRT support", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to replace it", file=sys.stderr)
        return 1
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(_C.metadata_xclbin())
    tmp.replace(out)  # complete or absent
    print(f"wrote {args.out}: no bitstream; with XCL_EMULATION_MODE=noop, backend='fpga' runs the whole host flow "
          f"and computes nothing")
    return 0


def cmd_info(args):
    from .info import info

    info(print_it=True, devices=args.devices)
    return 0


def _cluster(args):
    """A Dask client for --scheduler or --workers (edgemoe.distributed), else a null context (one process)."""
    import contextlib

    if args.scheduler is None and args.workers is None:
        return contextlib.nullcontext(None)
    from .distributed import cluster_client

    return cluster_client(scheduler=args.scheduler, workers=args.workers, fpga=args.backend == "fpga")


def _print_skipped(skipped) -> None:
    if skipped:
        print(f"skipped {len(skipped)} unreadable item{'s' * (len(skipped) != 1)} (--skip-bad):")
        for s in skipped:
            print(f"  {s}")


def cmd_run(args):
    from .runner import collect_images, output_paths, run_images

    # Everything about the files first: a typo or an existing output costs no model load.
    images = collect_images(args.image, check=not args.skip_bad)
    out_dir = Path(args.out)
    outputs = output_paths(images, out_dir, force=args.force)
    model = _load(args)
    tasks = args.task or model.tasks
    for t in tasks:
        if t not in model.tasks:
            print(f"error: unknown task {t!r}; this model has {model.tasks}", file=sys.stderr)
            return 2
    class_names = None
    if args.builtin:
        from .data import SYNTHETIC_CLASSES, SYNTHETIC_PARTS

        class_names = {"semseg": SYNTHETIC_CLASSES, "human_parts": SYNTHETIC_PARTS}
    out_dir.mkdir(parents=True, exist_ok=True)
    with _cluster(args) as client:
        report = run_images(model, images, outputs, tasks, batch_size=args.batch_size, class_names=class_names,
                            client=client, skip_bad=args.skip_bad)
    written = report.outputs
    names = ", ".join(p.name for p in written[:4]) + (", ..." if len(written) > 4 else "")
    print(f"wrote {len(written)} figure{'s' * (len(written) != 1)} to {out_dir}/ ({names}): input, then "
          f"{', '.join(tasks)} side by side")
    print(report.format())
    if _dry_run(model.backend):
        print(DRY_RUN_NOTE)
    return 0


def cmd_estimate(args):
    model = _load(args)
    task = args.task or model.tasks[0]
    if task not in model.tasks:
        print(f"error: unknown task {task!r}; this model has {model.tasks}", file=sys.stderr)
        return 2
    from .imaging import preprocess, sample_input

    images = preprocess(args.image, model.config.image_size) if args.image else sample_input(model.config.image_size)
    print(model.estimate(board=args.board, images=images, task=task, clock_mhz=args.clock_mhz,
                         heads=not args.backbone_only).table(per_stage=not args.summary))
    return 0


def cmd_evaluate(args):
    from .data import open_dataset
    from .evaluation import evaluate, format_results

    if args.backend == "reference":
        given = [f"--{k}" for k, v in _fpga_kwargs(args).items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only the native backends take {'these options' if len(given) > 1 else 'this option'} "
                             f"(--xclbin, --device, --timeout: fpga; --heads: emu and fpga; --precision: cpu), not "
                             f"--backend reference")
        model = _reference(args)
        size = model.cfg.image_size
    else:
        model = _load(args)
        size = model.config.image_size
    dataset = open_dataset(args.data, size, args.task)
    with _cluster(args) as client:
        results = evaluate(model, dataset, tasks=args.task, batch_size=args.batch_size, client=client,
                           skip_bad=args.skip_bad)
        where = f", {len(client.scheduler_info()['workers'])} Dask workers" if client is not None else ""
    print(f"{args.backend} on {args.data} ({results.images} images{where}):")
    print(format_results(results))
    _print_skipped(results.skipped)
    if _dry_run(args.backend):
        print(DRY_RUN_NOTE)
    return 0


def _reference(args):
    from .reference import M3ViT

    return M3ViT.from_checkpoint(args.checkpoint, top_k=args.top_k, num_heads=args.num_heads,
                                 image_size=tuple(args.image_size) if args.image_size else None, config=args.config)


def cmd_compare(args):
    from .imaging import preprocess, sample_input
    from .trace import compare

    traces = []
    for backend in args.backends:
        if backend == "reference":
            model = _reference(args)
            config = model.cfg
        else:  # the fpga options belong to its fpga side, --heads to its accelerator sides, --precision to cpu
            options = {k: v for k, v in _fpga_kwargs(args).items()
                       if (backend == "fpga" and k != "precision") or (k == "heads" and backend in ("emu", "fpga"))
                       or (k == "precision" and backend == "cpu")}
            model = _load(args, backend, fpga=options)
            config = model.config
        task = args.task or config.task_names[0]
        if task not in config.task_names:
            print(f"error: unknown task {task!r}; this model has {list(config.task_names)}", file=sys.stderr)
            return 2
        images = preprocess(args.image, config.image_size) if args.image else sample_input(config.image_size)
        traces.append(model.trace(images, task))
    result = compare(*traces)
    print(result)
    if any(_dry_run(b) for b in args.backends):
        print(DRY_RUN_NOTE)
    return 0 if result.first_divergence is None else 3


def cmd_train(args):
    from .train import train

    train(Path(args.out), steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
          max_minutes=args.max_minutes, force=args.force)
    print(f"wrote {args.out} (M3ViT rank-shard checkpoint directory)")
    return 0


def _int_at_least(minimum: int):
    """argparse type: an int >= minimum (argparse then names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1)


def _clock_mhz(text: str) -> int:
    """argparse type: a kernel clock in MHz, 50 .. 500."""
    value = _int_at_least(1)(text)
    if not 50 <= value <= 500:
        raise argparse.ArgumentTypeError(f"expected a kernel clock between 50 and 500 MHz, got {value}")
    return value


def _positive_minutes(text: str) -> float:
    """argparse type: a finite number of minutes > 0 (nan and inf are not)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of minutes > 0, got {text!r}")
    return value
_count = _int_at_least(0)


def _checkpoint_option(p):
    p.add_argument("--checkpoint", metavar="PATH",
                   help=f"M3ViT checkpoint: a rank-shard directory or a .pth/.pth.tar file (default: {BUILTIN})")


def _model_options(p):
    """The model options of every command that loads a checkpoint."""
    p.add_argument("--top-k", type=_positive_int, dest="top_k", metavar="K",
                   help="experts per token in each MoE layer (a checkpoint does not record it; default: --config, "
                        "else M3ViT's 4)")
    p.add_argument("--num-heads", type=_positive_int, dest="num_heads", metavar="N",
                   help="attention heads (a checkpoint does not record them; default: --config, else M3ViT's "
                        "per-width choice)")
    p.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"), dest="image_size",
                   help="input size in pixels when the checkpoint's token count does not tell it")
    p.add_argument("--config", metavar="YAML", help="M3ViT YAML config supplying heads, top-k and image size")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="cpu: fp32 (default) or bf16 (GEMMs, convolutions and attention products on bf16 inputs with "
                        "fp32 sums; needs AVX-512 BF16 or AMX; `python -m edgemoe info` says whether this CPU has it)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="OpenMP threads of the model (default: edgemoe's choice for this machine; "
                        "`python -m edgemoe info` says how many and why)")


def _backend_option(p, extra=(), default="cpu"):
    names = BACKENDS + tuple(extra)
    described = {"cpu": "fp32 CPU", "emu": "the accelerator's bit-exact emulation", "fpga": "an FPGA through XRT",
                 "reference": "PyTorch"}
    p.add_argument("--backend", default=default, choices=names,
                   help="where the model runs: " + ", ".join(f"{n} ({described[n]})" for n in names)
                        + f" (default: {default})")


def _distributed_options(p, what: str):
    """--scheduler / --workers (edgemoe.distributed) and --skip-bad."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help=f"run on a Dask cluster: the scheduler's address (tcp://HOST:8786); every worker must see "
                            f"the checkpoint and {what} at the same paths")
    where.add_argument("--workers", type=_positive_int, metavar="N",
                       help="run on N worker processes of this machine (a Dask LocalCluster, the CPUs split "
                            "between them)")
    p.add_argument("--skip-bad", action="store_true", dest="skip_bad",
                   help="leave out items that cannot be read or decoded, and list them at the end (default: stop "
                        "at the first, naming it)")


def _fpga_options(p):
    """The fpga backend's options, for every command that runs a model."""
    p.add_argument("--xclbin", metavar="FILE", help="fpga: the .xclbin built by kernels/vitis (default: $EDGEMOE_XCLBIN)")
    p.add_argument("--device", type=int, metavar="INDEX", help="fpga: XRT device index (default 0)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="fpga: seconds a kernel run may take (default 300)")
    p.add_argument("--heads", choices=["device", "host"],
                   help="emu, fpga: where the task heads run: on the accelerator, in the backbone's kernel call "
                        "(device, the default) or on the CPU (host)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgemoe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="version, build, backends (and why any is unavailable), default threads, "
                                         "and the accelerator builds' limits")
    p_info.add_argument("--devices", action="store_true",
                        help="also probe the system for FPGA devices through XRT (never done otherwise)")

    run = sub.add_parser("run", help="run a model on image files, batched, all tasks at once; one PNG per image",
                         description="Run a model on image files: batched, every task in one call per batch, one "
                                     "PNG per image (input and each task side by side, with legends), throughput.")
    run.add_argument("--image", action="append", required=True, metavar="FILE|DIR|GLOB",
                     help="an image file, a directory (its image files, not subdirectories) or a quoted glob "
                          "pattern; repeatable")
    run.add_argument("--out", required=True, metavar="DIR",
                     help="directory for the figures: <image name>.png per image (created if missing)")
    run.add_argument("--force", action="store_true", help="overwrite figures that already exist in --out")
    _checkpoint_option(run)
    run.add_argument("--task", action="append", metavar="TASK", help="task to run (repeatable; default: all)")
    run.add_argument("--batch-size", type=_positive_int, default=8, dest="batch_size", metavar="N",
                     help="images per model call (default 8)")
    _backend_option(run)
    _model_options(run)
    _fpga_options(run)
    _distributed_options(run, "the images and --out")

    est = sub.add_parser("estimate", help="modelled latency and resources of the accelerator on a board")
    _checkpoint_option(est)
    est.add_argument("--board", default="zcu102", choices=["zcu102", "u280"],
                     help="the board whose kernel build is modelled (default: zcu102)")
    est.add_argument("--task", help="the task whose gates route the MoE layers (default: the first)")
    est.add_argument("--image", metavar="FILE", help="input image whose routing sets the MoE load (default: the "
                                                     "built-in photo)")
    est.add_argument("--summary", action="store_true", help="totals by unit only, no per-stage rows")
    est.add_argument("--backbone-only", action="store_true", dest="backbone_only",
                     help="model the backbone alone (the task heads on the host), not the task's head too")
    est.add_argument("--clock-mhz", type=_clock_mhz, dest="clock_mhz", metavar="MHZ",
                     help="kernel clock to model (default: the board's, 250 MHz on the ZCU102 and 225 MHz on the "
                          "U280: what a design of this size can plausibly close; kernels/config/<board>.h says why)")
    _model_options(est)
    est.set_defaults(backend="cpu", xclbin=None, device=None, timeout=None)

    ev = sub.add_parser("evaluate", help="task metrics of a checkpoint on a dataset, on any backend or PyTorch")
    _checkpoint_option(ev)
    _backend_option(ev, extra=("reference",))
    ev.add_argument("--data", default="synthetic:100", metavar="SPEC",
                    help="synthetic:N (the first N built-in test scenes), pascal:DIR or nyud:DIR (M3ViT's folder "
                         "layouts, val split) (default: synthetic:100)")
    ev.add_argument("--task", action="append", metavar="TASK",
                    help="task to evaluate (repeatable; default: all the model and the data have)")
    ev.add_argument("--batch-size", type=_positive_int, default=8, dest="batch_size", metavar="N",
                    help="images per model call (default 8)")
    _model_options(ev)
    _fpga_options(ev)
    _distributed_options(ev, "the dataset")

    cmp = sub.add_parser("compare", help="layer-by-layer comparison of two backends (or PyTorch) on one image")
    _checkpoint_option(cmp)
    cmp.add_argument("--backends", nargs=2, default=["reference", "emu"], metavar=("A", "B"),
                     choices=BACKENDS + ("reference",),
                     help="baseline and backend under test: reference (PyTorch), cpu, emu or fpga "
                          "(default: reference emu)")
    cmp.add_argument("--task", help="the task whose gates and head run (default: the first)")
    cmp.add_argument("--image", metavar="FILE", help="input image (default: the built-in photo)")
    _model_options(cmp)
    _fpga_options(cmp)

    tr = sub.add_parser("train", help="train the small M3ViT on the built-in synthetic scenes (CPU)")
    tr.add_argument("--out", required=True, metavar="DIR",
                    help="checkpoint directory to write (M3ViT's rank shards)")
    tr.add_argument("--steps", type=_positive_int, default=640, metavar="N",
                    help="optimiser steps, each on fresh scenes (default 640)")
    tr.add_argument("--batch-size", type=_positive_int, default=8, dest="batch_size", metavar="N",
                    help="scenes per step (default 8)")
    tr.add_argument("--seed", type=int, default=0, help="seed of the initial weights; the scenes are the same for every seed (default 0)")
    tr.add_argument("--threads", type=_positive_int, default=2, metavar="N", help="PyTorch threads (default 2)")
    tr.add_argument("--max-minutes", type=_positive_minutes, dest="max_minutes", metavar="MIN",
                    help="stop with an error past this time")
    tr.add_argument("--force", action="store_true", help="replace --out if it exists (it is replaced only once "
                                                         "the new checkpoint is complete)")

    noop = sub.add_parser("noop-xclbin", help="write a metadata-only xclbin for a dry run of the fpga backend")
    noop.add_argument("out", help="output .xclbin path")
    noop.add_argument("--force", action="store_true", help="replace an existing file")

    demo = sub.add_parser("demo", help="the built-in trained M3ViT on test scenes and a photo: figures, task "
                                       "metrics against PyTorch and a baseline, routing")
    demo.add_argument("--out", default="demo_out", metavar="DIR", help="directory for the figures (default demo_out)")
    demo.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR",
                      help="cache directory; the demo writes nothing there (its model is built in), the option "
                           "stays for make demo")
    _backend_option(demo)

    bench = sub.add_parser("bench", help="latency of the native backends vs PyTorch, and the modelled accelerator")
    bench.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR",
                       help="where the seeded benchmark checkpoints (PASCAL ViT-S 512x512 and Edge-MoE's ViT-T, "
                            "about 500 MB) are written on the first run and reused (default: ~/.cache/edgemoe)")
    bench.add_argument("--quick", action="store_true",
                       help="a short run (about a minute) for a first look; the full run is make bench")
    bench.add_argument("--scale", action="store_true",
                       help="only the scale-out table: evaluate on Dask LocalClusters of 1, 2 and 4 worker processes "
                            "against one process (about two minutes; make bench runs it too)")
    bench.add_argument("--repeats", type=_positive_int, default=5, metavar="N",
                       help="timed runs of the native cpu backend per measurement (default 5; median reported)")
    bench.add_argument("--torch-repeats", type=_positive_int, default=3, metavar="N",
                       help="timed runs of the PyTorch peer (default 3)")
    bench.add_argument("--threads", type=_positive_int, default=min(2, len(os.sched_getaffinity(0))), metavar="N",
                       help="threads of every backend and of PyTorch (default 2, or 1 on a 1-CPU machine)")
    bench.add_argument("--emu-repeats", type=_count, default=2, metavar="N",
                       help="timed runs of the emulated PASCAL ViT-S backbone (default 2; 0 skips it)")
    return parser


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line each ("warning: ..."), not with the source line that raised them."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning display (tests call main in-process)
        warnings.showwarning = _print_warning
        try:
            return _dispatch(args)
        except (ValueError, TypeError, RuntimeError, OSError, ImportError) as exc:  # TimeoutError is an OSError
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


def cmd_demo(args):
    from .demo import demo as run_demo

    return run_demo(Path(args.out), Path(args.cache), args.backend)


def cmd_bench(args):
    from .bench import bench as run_bench

    return run_bench(Path(args.cache), args.repeats, args.torch_repeats, args.threads, args.emu_repeats,
                     quick=args.quick, scale=args.scale)


COMMANDS = {"info": cmd_info, "run": cmd_run, "estimate": cmd_estimate, "noop-xclbin": cmd_noop_xclbin,
            "evaluate": cmd_evaluate, "compare": cmd_compare, "train": cmd_train, "demo": cmd_demo,
            "bench": cmd_bench}


def _dispatch(args) -> int:
    if args.command in ("run", "estimate", "evaluate", "compare"):
        _use_builtin_checkpoint(args)
    return COMMANDS[args.command](args)  # argparse allows only these commands
