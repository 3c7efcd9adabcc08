"""Evaluation and batch inference on Dask distributed: ``evaluate(..., client=)`` and ``run --workers/--scheduler``.

No scheduler of edgemoe's own: Dask's runs the shards, moves them off a worker that dies, and reports
progress. What edgemoe adds:

- **Models travel as recipes** (edgemoe.recipe). A worker builds each model once and keeps it
  (``worker_model``), with the worker's own threads (``EDGEMOE_NUM_THREADS``, else all the CPUs the
  worker process may use: a model's calls are serialised, so one model uses them all) and, for fpga,
  its own card (``EDGEMOE_DEVICE``, else the model's ``device``). fpga shards ask for one unit of the
  worker resource ``fpga`` (``dask-worker --resources "fpga=1"``).
- **Datasets shard by index.** The dataset object (a path and a list of ids for the edgemoe.data
  readers) goes to each worker once; a worker reads its own items. A shard returns its meters
  (edgemoe.metrics: counts and exact sums, a few KB), merged on the client in shard order.
- **Faults.** A shard on a worker that dies is recomputed elsewhere by Dask (up to the scheduler's
  ``allowed-failures``); the merged metrics are the same bits. A bad item raises naming it and the
  worker, or with ``skip_bad`` is listed and left out.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ENV_THREADS = "EDGEMOE_NUM_THREADS"
ENV_DEVICE = "EDGEMOE_DEVICE"
FPGA_RESOURCE = "fpga"
# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's mmap threshold at
# its 128 KiB default: every image-sized array is then mmap'ed and unmapped anew, and reading and scoring scenes
# runs 3-7x slower (measured here). A 32 MiB mmap threshold keeps such arrays on the heap; memory above the
# 128 MiB trim threshold still goes back to the system. dask-worker on other hosts takes the same variables.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
SHARDS_PER_WORKER = 4  # load balance and the work lost with a worker, against per-shard overhead
MAX_PROCESSES_PER_CPU = 4  # local workers: beyond this they only queue for CPUs (and each holds a model)

MAX_CACHED_MODELS = 2  # per worker: a long-lived worker keeps the models of the last runs, not of every run
_models: "OrderedDict[tuple, object]" = OrderedDict()
_builds: Counter = Counter()
_lock = threading.Lock()


def current_worker_address() -> Optional[str]:
    """The address of the Dask worker running this code, or None outside one: a worker's task thread, or a
    worker process's own threads (unpickling arguments). A process that also holds a Dask client (an
    in-process cluster, processes=False) is not taken for a worker outside its task threads, so its own
    pickles, errors and skipped items stay its own (distributed's get_worker() would pick any worker)."""
    if "distributed" not in sys.modules:  # never imported: not on a worker (and importing it costs ~1 s)
        return None
    from distributed.client import _global_clients
    from distributed.worker import WORKER_ANY_RUNNING, Worker, thread_state

    try:
        return thread_state.execution_state["worker"].address
    except (AttributeError, KeyError):
        pass
    if len(_global_clients):
        return None
    running = [w for w in list(Worker._instances) if w.status in WORKER_ANY_RUNNING]
    return running[0].address if len(running) == 1 else None


def _env_int(name: str, minimum: int) -> Optional[int]:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    address = current_worker_address()
    where = f"worker {address}: " if address else ""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{where}environment variable {name} must be a whole number, got {text!r:.40}") from None
    if value < minimum:
        raise ValueError(f"{where}environment variable {name} must be >= {minimum}, got {value}")
    return value


def worker_threads() -> int:
    """A worker's model threads: EDGEMOE_NUM_THREADS, else every CPU this process may use."""
    from .model import _default_threads

    threads = _env_int(ENV_THREADS, 1)
    return min(threads, _default_threads()) if threads else _default_threads()


def worker_device() -> Optional[int]:
    """A worker's XRT device (fpga): EDGEMOE_DEVICE, else None (the model's own)."""
    return _env_int(ENV_DEVICE, 0)


def worker_model(recipe):
    """On a Dask worker: the worker's build of ``recipe`` (built on first use, then cached); else None."""
    address = current_worker_address()
    if address is None:
        return None
    key = (address, recipe.key)
    with _lock:
        model = _models.get(key)
        if model is None:
            model = recipe.build(num_threads=worker_threads(), device=worker_device())
            model._recipe = recipe
            model._worker_cache_key = key
            _models[key] = model
            _builds[address] += 1
            while len(_models) > MAX_CACHED_MODELS:
                _models.popitem(last=False)
        else:
            _models.move_to_end(key)
    return model


def forget_worker_model(model) -> None:
    """Drop ``model`` from its worker's cache: it is being changed (to(), num_threads), so it no longer
    is what its recipe builds, and the next shard that needs the recipe builds it afresh."""
    key = getattr(model, "_worker_cache_key", None)
    if key is not None:
        with _lock:
            if _models.get(key) is model:
                del _models[key]
        model._worker_cache_key = None


def worker_builds() -> Dict[str, int]:
    """{worker address: models built} in this process: on a worker, what its cache built (tests, diagnostics)."""
    with _lock:
        return dict(_builds)


# --- the client's side ---------------------------------------------------------------------------

def _client_workers(client) -> Dict[str, dict]:
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        raise ValueError("client: the Dask cluster has no workers (start dask-worker processes, or use --workers N)")
    return workers


def _resources(client, model) -> Optional[dict]:
    """fpga models need a worker with a card: the worker resource ``fpga``; refused if no worker has one."""
    if getattr(model, "backend", None) != "fpga":
        return None
    offered = [a for a, w in _client_workers(client).items() if w.get("resources", {}).get(FPGA_RESOURCE, 0) >= 1]
    if not offered:
        raise ValueError(f"client: no worker offers the resource {FPGA_RESOURCE!r} for backend 'fpga'; start each "
                         f"worker of a host with a card as `dask-worker SCHEDULER --resources \"{FPGA_RESOURCE}=1\"` "
                         f"(and {ENV_DEVICE}=INDEX for its card)")
    return {FPGA_RESOURCE: 1}


def _shards(indices: Sequence[int], batch_size: int, workers: int, shard_size: Optional[int]) -> List[Sequence[int]]:
    if shard_size is None:
        batches = math.ceil(len(indices) / batch_size)
        shard_size = batch_size * max(1, math.ceil(batches / (workers * SHARDS_PER_WORKER)))
    else:
        shard_size = _positive_index(shard_size, "shard_size")
    return [indices[i:i + shard_size] for i in range(0, len(indices), shard_size)]


def _positive_index(value, name: str) -> int:
    """An int-like (int, numpy integer) >= 1, else TypeError/ValueError naming ``name``."""
    import operator

    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class ShippedModel:
    """A model on its way to the workers: an edgemoe.Model as its recipe, built (once per worker) when a
    shard first asks for it, so that a failure to build is that shard's error, naming the worker; any
    other model (edgemoe.reference.M3ViT) as itself."""

    def __init__(self, model):
        from .model import Model

        # Sealed here, on the client, once: the workers receive the checkpoint's digest.
        self.recipe, self.value = (model._recipe.sealed(), None) if isinstance(model, Model) else (None, model)

    def get(self):
        if self.recipe is None:
            return self.value
        from .recipe import rebuild_model

        return rebuild_model(self.recipe)


def _unpickled(payload: bytes):
    from distributed.protocol.pickle import loads

    return loads(payload)


def _ship(client, value, what: str):
    """``value`` to the cluster once, as the result of a task (Dask then moves it worker to worker, not per
    shard). Not client.scatter: scattered data lives only on the workers holding it, and a worker that
    dies with the only copy would fail every shard; a task's result is recomputed like any other. The
    task carries the pickle made to check that ``value`` pickles, so a large value is pickled once."""
    import pickle

    from distributed.protocol.pickle import dumps  # Dask's pickler: cloudpickle where pickle cannot

    try:
        payload = dumps(value)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"{what} must pickle to go to Dask workers: {type(exc).__name__}: {exc}") from None
    return client.submit(_unpickled, payload, pure=False, key=f"edgemoe-{what.split()[-1]}-{time.time_ns():x}")


def _scheduler_has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def dashboard_note(client) -> str:
    """The Dask dashboard's address, or why there is none (it needs bokeh, which Debian 12 does not package)."""
    try:
        if "dashboard" in client.scheduler_info().get("services", {}) and client.run_on_scheduler(_scheduler_has_bokeh):
            return f"Dask dashboard: {client.dashboard_link}"
    except Exception:  # noqa: BLE001 - a note, never a failure
        pass
    return ("Dask dashboard: none (the scheduler serves no dashboard: Dask's needs the bokeh package, which Debian 12 "
            "does not package)")


def _track(client, futures, progress: bool, stream=None) -> None:
    """Dask's own progress report: its console bar (blocks until the futures finish), or its notebook widget
    where ipywidgets is installed. Bound to ``client``'s scheduler and event loop, not to the default client."""
    if not progress:
        return
    from distributed.diagnostics.progressbar import MultiProgressWidget, TextProgressBar
    from distributed.utils import is_kernel

    print(dashboard_note(client), file=stream or sys.stderr)
    where = {"scheduler": client.scheduler.address, "loop": client.loop}
    if is_kernel():
        try:
            from IPython.display import display
            import ipywidgets  # noqa: F401

            display(MultiProgressWidget(futures, complete=True, **where))
            return
        except ImportError:
            pass
    # Dask's bar draws on sys.stdout; results go there, so the bar goes where edgemoe's own bars go.
    with contextlib.redirect_stdout(stream or sys.stderr):
        TextProgressBar(futures, complete=True, **where)


def _gather(client, futures):
    """The shards' results in shard order, each fetched as its shard finishes (a worker that dies later
    then takes nothing of it along); the first failure is raised as the shard raised it, at once (the
    caller cancels the other shards)."""
    from distributed import as_completed

    results = {}
    for future, result in as_completed(futures, with_results=True, raise_errors=True):
        results[future.key] = result
    return [results[f.key] for f in futures]


def _map_shards(client, model, kind: str, function, shard_args, shared=(), progress=True, stream=None):
    """``function(shipped model, *shared values, *args)`` for each ``args`` of ``shard_args`` on the client's
    workers (fpga ones on workers with a card); the results in shard order. ``shared``: (what, value)
    pairs sent once, like the model."""
    resources = _resources(client, model)
    inputs = [_ship(client, ShippedModel(model), "the model")] + [_ship(client, v, what) for what, v in shared]
    token = f"{time.time_ns():x}"
    futures = [client.submit(function, *inputs, *args, key=f"edgemoe-{kind}-{token}-{k}", resources=resources,
                             pure=False)
               for k, args in enumerate(shard_args)]
    try:
        _track(client, futures, progress, stream)
        return _gather(client, futures)
    finally:
        client.cancel(futures + inputs)


def _evaluate_shard(shipped, dataset, indices, tasks, batch_size, skip_bad):
    from .evaluation import evaluate_items

    return evaluate_items(shipped.get(), dataset, indices, tasks, batch_size, skip_bad)


def evaluate_on_client(client, model, dataset, indices, tasks, batch_size, skip_bad, progress, shard_size,
                       stream=None):
    """evaluate's distributed path: shards of ``indices`` on the client's workers, meters merged in order."""
    from .evaluation import PartialEvaluation

    shards = _shards(indices, batch_size, len(_client_workers(client)), shard_size)
    parts = _map_shards(client, model, "evaluate", _evaluate_shard,
                        [(shard, tasks, batch_size, skip_bad) for shard in shards],
                        shared=[("the dataset", dataset)], progress=progress, stream=stream)
    total = parts[0]
    for part in parts[1:]:
        total.merge(part)
    return total


def _run_shard(shipped, images, outputs, tasks, batch_size, class_names, skip_bad):
    from .runner import run_batches

    return run_batches(shipped.get(), images, outputs, tasks, batch_size, class_names, skip_bad)


def run_on_client(client, model, images, outputs, tasks, batch_size, class_names=None, skip_bad=False,
                  progress=True, shard_size=None):
    """run's distributed path: the workers read the image files, run the model and write the figures
    (``outputs`` must be paths the workers can write, e.g. on a shared filesystem). A RunReport."""
    from .runner import RunReport

    workers = _client_workers(client)
    start = time.perf_counter()
    shards = _shards(range(len(images)), batch_size, len(workers), shard_size)
    images = [Path(os.path.abspath(p)) for p in images]  # the same files for a worker in another directory
    outputs = [Path(os.path.abspath(p)) for p in outputs]
    parts = _map_shards(client, model, "run", _run_shard,
                        [([images[i] for i in shard], [outputs[i] for i in shard], list(tasks), batch_size,
                          class_names, skip_bad) for shard in shards], progress=progress)
    report = RunReport(model.backend, list(tasks), batch_size, warmup_seconds=0.0)
    for shard, part in zip(shards, parts):
        report.merge(part, offset=shard[0])
    report.wall_seconds = time.perf_counter() - start
    report.workers = len(workers)
    return report


def local_cluster(workers: int, threads: Optional[int] = None, fpga: bool = False):
    """A ``LocalCluster`` of ``workers`` processes on this machine (one task at a time each), the CPUs
    split between them: each model gets ``threads`` (default: this process's CPUs // workers, at least 1).
    ``fpga``: each worker offers the resource ``fpga=1`` (all on the model's device: for one worker per
    card, start dask-worker processes with EDGEMOE_DEVICE instead)."""
    import dask
    from distributed import LocalCluster

    from .model import _default_threads

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    limit = MAX_PROCESSES_PER_CPU * _default_threads()
    if workers > limit:
        raise ValueError(f"workers: {workers} processes on this machine's {_default_threads()} CPUs; at most {limit} "
                         f"(more only wait for CPUs; for more hosts start dask-worker there and use a scheduler)")
    share = max(1, _default_threads() // workers) if threads is None else _positive_index(threads, "threads")
    # glibc reads MALLOC_* when a process starts: only the nannies' pre-spawn environment is early enough.
    spawn_env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC_ENV}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            env={ENV_THREADS: str(share)}, silence_logs=40,
                            resources={FPGA_RESOURCE: 1} if fpga else None)


class cluster_client:
    """``with cluster_client(scheduler=ADDR)`` or ``(workers=N)``: a Client on a running scheduler, or on a
    LocalCluster of N processes made (and closed) here."""

    def __init__(self, scheduler: Optional[str] = None, workers: Optional[int] = None, timeout=None,
                 fpga: bool = False):
        if (scheduler is None) == (workers is None):
            raise ValueError("pass exactly one of scheduler (an address, tcp://HOST:8786) or workers (a count)")
        self.scheduler, self.workers, self.timeout, self.fpga = scheduler, workers, timeout, fpga
        self.cluster = self.client = None

    def __enter__(self):
        from distributed import Client

        if self.workers is not None:
            self.cluster = local_cluster(self.workers, fpga=self.fpga)
            self.client = Client(self.cluster)
        else:
            try:
                # timeout None: Dask's own, the config value distributed.comm.timeouts.connect (30 s)
                self.client = Client(self.scheduler, **({} if self.timeout is None else {"timeout": self.timeout}))
            except (OSError, TimeoutError) as exc:
                raise OSError(f"--scheduler {self.scheduler}: cannot reach a Dask scheduler there: {exc}") from None
            except (ValueError, TypeError) as exc:  # Dask's address parser: no port, unknown scheme, ...
                raise ValueError(f"--scheduler {self.scheduler!r}: not a Dask scheduler address ({exc}); e.g. "
                                 f"tcp://HOST:8786") from None
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False
