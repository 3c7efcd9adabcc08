"""Issue 23: evaluation and batch inference on Dask distributed, on a LocalCluster of 2 worker processes.

Distributed evaluate equals single-process evaluate bit for bit (integer statistics add, float ones
are exact sums: edgemoe.metrics), a worker killed mid-run changes nothing, run --workers writes every
figure, a model travels as its recipe and is built once per worker, the CLI options work."""
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

distributed = pytest.importorskip("distributed")  # Debian's python3-distributed: the Makefile installs it

import edgemoe  # noqa: E402
from edgemoe import cli, data, synthetic  # noqa: E402
from edgemoe import distributed as edist  # noqa: E402
from edgemoe.errors import CheckpointError  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with edist.local_cluster(2, threads=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def model():
    return edgemoe.Model.pretrained(num_threads=1)


@pytest.fixture(scope="module")
def scenes():
    return data.SyntheticScenes("test", 12)


@pytest.fixture(scope="module")
def single(model, scenes):
    return edgemoe.evaluate(model, scenes, batch_size=4, progress=False)


class KillingScenes(data.SyntheticScenes):
    """Synthetic scenes whose item ``kill_at`` ends the worker process that reads it, once (a marker file
    remembers): a worker dying mid-run, as a crash or an OOM kill would end it."""

    def __init__(self, size, marker, kill_at):
        super().__init__("test", size)
        self.marker, self.kill_at = str(marker), kill_at

    def __getitem__(self, index):
        if index == self.kill_at and edist.current_worker_address() and not os.path.exists(self.marker):
            Path(self.marker).write_text(edist.current_worker_address())
            os._exit(1)
        return super().__getitem__(index)


class BadScene(data.SyntheticScenes):
    """Item ``bad`` fails to decode, as a truncated JPEG would."""

    def __init__(self, size, bad):
        super().__init__("test", size)
        self.bad = bad

    def __getitem__(self, index):
        if index == self.bad:
            raise ValueError(f"cannot decode {self.item_name(index)}: image file is truncated")
        return super().__getitem__(index)


# --- models that travel ---------------------------------------------------------------------------

def test_a_model_pickles_as_its_recipe_and_rebuilds_equal(model, scenes):
    blob = pickle.dumps(model)
    assert len(blob) < 4096  # a path, a digest, the config: no weights, no native object
    again = pickle.loads(blob)
    assert again.backend == "cpu" and again.config == model.config
    x = scenes[0]["image"][None]
    for task in model.tasks:
        assert torch.equal(again(x, task=task), model(x, task=task))


def test_a_model_from_a_state_dict_pickles_its_tensors(tiny_model):
    model = edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()), num_threads=1)
    again = pickle.loads(pickle.dumps(model))
    x = synthetic.random_images(tiny_model.cfg, 1)
    assert torch.equal(again(x, task=model.tasks[0]), model(x, task=model.tasks[0]))
    assert again.num_threads == 1


def test_the_recipe_follows_to_and_num_threads(tiny_model):
    model = edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()), num_threads=1)
    model.to("emu", heads="host")
    again = pickle.loads(pickle.dumps(model))
    assert again.backend == "emu"
    x = synthetic.pixel_images(tiny_model.cfg, 1)
    assert torch.equal(again(x, task=model.tasks[0]), model(x, task=model.tasks[0]))


def _load_tiny(path, cfg):
    return edgemoe.Model.from_checkpoint(path, image_size=cfg.image_size, top_k=cfg.top_k, num_heads=cfg.num_heads,
                                         num_threads=1)


def test_a_checkpoint_changed_or_gone_is_a_checkpoint_error_naming_the_path(tiny_checkpoint, tiny_model, tmp_path):
    model = _load_tiny(tiny_checkpoint, tiny_model.cfg)
    shard = tiny_checkpoint / "1.pth"
    shard.write_bytes(shard.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="changed on disk since the model was loaded"):
        pickle.dumps(model)

    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, copy)
    model = _load_tiny(copy, tiny_model.cfg)
    blob = pickle.dumps(model)
    shard = copy / "1.pth"
    shard.write_bytes(shard.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match=f"host .*: checkpoint {copy} holds other bytes"):
        pickle.loads(blob)
    shutil.rmtree(copy)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {copy}"):
        pickle.loads(blob)


def test_a_checkpoint_a_worker_cannot_read_names_the_worker_and_the_path(client, tiny_checkpoint, tiny_model):
    model = _load_tiny(tiny_checkpoint, tiny_model.cfg)
    pickle.dumps(model)  # sealed with the files' digest; then the files go before any worker has seen them
    moved = tiny_checkpoint.with_name("moved")
    tiny_checkpoint.rename(moved)
    try:
        scenes = data.SyntheticScenes("test", 2, tiny_model.cfg.image_size)
        with pytest.raises(CheckpointError, match=rf"worker tcp://[\d.:]+: cannot read checkpoint {tiny_checkpoint}"):
            edgemoe.evaluate(model, scenes, client=client, progress=False)
    finally:
        moved.rename(tiny_checkpoint)


# --- evaluate ---------------------------------------------------------------------------------------

def test_distributed_evaluate_equals_single_process_for_every_task(client, model, scenes, single):
    assert sorted(single) == sorted(model.tasks)
    for shard_size in (None, 4, 8):  # shards of whole batches and of several
        result = edgemoe.evaluate(model, scenes, batch_size=4, client=client, shard_size=shard_size, progress=False)
        assert dict(result) == dict(single), shard_size
        assert result.images == len(scenes) and result.skipped == []
    # Built once per worker, whatever the number of shards and calls.
    builds = client.run(edist.worker_builds)
    assert builds and all(counts == {address: 1} for address, counts in builds.items())


def test_a_worker_killed_mid_run_loses_nothing(client, model, single, tmp_path):
    marker = tmp_path / "killed"
    dataset = KillingScenes(12, marker, kill_at=9)
    result = edgemoe.evaluate(model, dataset, batch_size=4, client=client, shard_size=4, progress=False)
    assert marker.exists(), "no worker was killed"
    assert dict(result) == dict(single)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_a_bad_item_names_itself_and_the_worker_or_is_skipped(client, model, scenes):
    bad = BadScene(12, bad=6)
    with pytest.raises(ValueError, match=r"worker tcp://[\d.:]+: test scene 6 \(dataset item 6\): cannot decode"):
        edgemoe.evaluate(model, bad, batch_size=4, client=client, progress=False)
    result = edgemoe.evaluate(model, bad, batch_size=4, client=client, skip_bad=True, progress=False)
    assert [s.index for s in result.skipped] == [6] and result.images == 11
    assert result.skipped[0].worker.startswith("tcp://") and "truncated" in result.skipped[0].error
    good = [scenes[i] for i in range(12) if i != 6]
    assert dict(result) == dict(edgemoe.evaluate(model, good, batch_size=4, progress=False))
    local = edgemoe.evaluate(model, bad, batch_size=4, skip_bad=True, progress=False)
    assert dict(local) == dict(result) and [s.index for s in local.skipped] == [6] and local.skipped[0].worker is None


def test_the_merge_is_order_free(model, scenes, single):
    from edgemoe.evaluation import evaluate_items

    tasks = list(single)
    parts = [evaluate_items(model, scenes, range(a, b), tasks, 4) for a, b in ((8, 12), (0, 3), (3, 8))]
    total = parts[0].merge(parts[1]).merge(parts[2])
    assert dict(total.result()) == dict(single)


def test_an_fpga_model_needs_a_worker_with_a_card(client):
    class FpgaLike:
        backend = "fpga"

    with pytest.raises(ValueError, match=r"no worker offers the resource 'fpga'.*--resources \"fpga=1\""):
        edist._resources(client, FpgaLike())


# --- run and the CLI --------------------------------------------------------------------------------

@pytest.fixture
def photo_dir(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    scenes = data.SyntheticScenes("test", 5)
    for i in range(5):
        Image.fromarray(scenes[i]["pixels"].numpy()).save(folder / f"scene{i}.png")
    return folder


def test_run_on_workers_writes_every_figure(photo_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "--image", str(photo_dir), "--out", str(out), "--workers", "2", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"scene{i}.png" for i in range(5)]
    assert "5 images on cpu (2 Dask workers" in printed
    local = tmp_path / "local"
    assert cli.main(["run", "--image", str(photo_dir), "--out", str(local), "--batch-size", "2"]) == 0
    for i in range(5):  # the same figures as a run in this process
        assert (out / f"scene{i}.png").read_bytes() == (local / f"scene{i}.png").read_bytes()


def test_run_skip_bad_lists_the_file_and_the_worker(cluster, photo_dir, tmp_path, capsys):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert cli.main(["run", "--image", str(photo_dir), "--out", str(out), "--scheduler", cluster.scheduler_address,
                     "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert len(list(out.iterdir())) == 5
    assert f"{photo_dir / 'broken.png'} on worker tcp://" in printed
    assert cli.main(["run", "--image", str(photo_dir), "--out", str(tmp_path / "again"), "--scheduler",
                     cluster.scheduler_address]) == 1
    assert "broken.png" in capsys.readouterr().err


def test_cli_evaluate_on_a_scheduler_and_on_local_workers(cluster, capsys):
    assert cli.main(["evaluate", "--data", "synthetic:8", "--scheduler", cluster.scheduler_address,
                     "--threads", "1"]) == 0
    remote = capsys.readouterr().out
    assert "cpu on synthetic:8 (8 images, 2 Dask workers)" in remote
    assert cli.main(["evaluate", "--data", "synthetic:8", "--workers", "2"]) == 0
    local_cluster = capsys.readouterr().out
    assert cli.main(["evaluate", "--data", "synthetic:8"]) == 0
    one_process = capsys.readouterr().out
    rows = lambda text: [line for line in text.splitlines() if line.split(" ")[0] in edgemoe.TASK_ORDER]  # noqa: E731
    assert len(rows(remote)) == 6
    assert rows(remote) == rows(local_cluster) == rows(one_process)


def test_cli_refuses_both_and_unreachable_schedulers(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert "not allowed with argument" in capsys.readouterr().err
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):  # Dask's own setting: 30 s by default
        assert cli.main(["evaluate", "--data", "synthetic:2", "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "cannot reach a Dask scheduler" in capsys.readouterr().err
    assert cli.main(["evaluate", "--data", "synthetic:2", "--scheduler", "garbage"]) == 1
    assert "--scheduler 'garbage': not a Dask scheduler address (missing port number" in capsys.readouterr().err


def test_fpga_shards_go_to_workers_with_a_card_on_their_device(noop, tiny_model, monkeypatch):
    """Under XRT's noop shim (nothing computes, so no numbers are checked): the fpga model is built on
    each worker that offers the resource, on the device its EDGEMOE_DEVICE names."""
    model = edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()), "fpga", xclbin=noop, num_threads=1)
    scenes = data.SyntheticScenes("test", 4, tiny_model.cfg.image_size)
    monkeypatch.setenv(edist.ENV_DEVICE, "0")
    with edist.local_cluster(2, threads=1, fpga=True) as cluster, distributed.Client(cluster) as client:
        result = edgemoe.evaluate(model, scenes, batch_size=2, client=client, progress=False)
        assert sorted(result) == sorted(t for t in model.tasks if t in scenes[0]) and result.images == 4
        built = client.run(lambda: [(m.backend, m._recipe.options.get("xclbin")) for m in edist._models.values()])
    assert any(built.values()) and all(b == [("fpga", noop)] for b in built.values() if b)


def test_cpu_outputs_are_the_same_bits_for_any_threads_and_batch(model, scenes):
    """What makes the distributed metrics equal the single-process ones on cpu: a worker with other
    threads, or a shard that batches an image with other images, computes the same bits for it."""
    x = torch.stack([scenes[i]["image"] for i in range(4)])
    one = model(x, tasks=model.tasks)
    two_threads = pickle.loads(pickle.dumps(model))
    two_threads.num_threads = min(2, os.cpu_count() or 1)
    alone = [two_threads(x[i:i + 1], tasks=model.tasks) for i in range(4)]
    for task in model.tasks:
        assert torch.equal(torch.cat([a[task] for a in alone]), one[task]), task


def test_worker_environment_is_checked(monkeypatch):
    monkeypatch.setenv(edist.ENV_THREADS, "two")
    with pytest.raises(ValueError, match="EDGEMOE_NUM_THREADS must be a whole number"):
        edist.worker_threads()
    monkeypatch.setenv(edist.ENV_THREADS, "0")
    with pytest.raises(ValueError, match="EDGEMOE_NUM_THREADS must be >= 1"):
        edist.worker_threads()
    monkeypatch.setenv(edist.ENV_THREADS, "100000")
    assert edist.worker_threads() == os.cpu_count()
    monkeypatch.setenv(edist.ENV_DEVICE, "-1")
    with pytest.raises(ValueError, match="EDGEMOE_DEVICE must be >= 0"):
        edist.worker_device()
    monkeypatch.delenv(edist.ENV_DEVICE)
    assert edist.worker_device() is None
    assert edist.current_worker_address() is None and edist.worker_model(object()) is None


# --- review follow-ups: a lone worker's death, the worker cache, in-process clusters ------------------

def _change_and_report(shipped):
    changed = shipped.get()
    changed.to("emu", heads="host")
    return changed.backend, shipped.get().backend, len(edist._models)


def test_a_model_changed_on_a_worker_leaves_the_cache(client, model, scenes, single):
    shipped = edist.ShippedModel(model)
    changed, rebuilt, cached = client.submit(_change_and_report, shipped, pure=False).result()
    assert (changed, rebuilt) == ("emu", "cpu") and cached <= edist.MAX_CACHED_MODELS
    assert dict(edgemoe.evaluate(model, scenes, batch_size=4, client=client, progress=False)) == dict(single)


def test_an_in_process_cluster_does_not_make_the_client_a_worker(model):
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        assert edist.current_worker_address() is None
        again = pickle.loads(pickle.dumps(model))
        assert again is not model and getattr(again, "_worker_cache_key", None) is None


def test_shard_size_takes_numpy_ints_and_refuses_others(client, model, single, scenes):
    import numpy as np

    result = edgemoe.evaluate(model, scenes, batch_size=4, client=client, shard_size=np.int64(4), progress=False)
    assert dict(result) == dict(single)
    with pytest.raises(TypeError, match="shard_size must be an int, got float"):
        edgemoe.evaluate(model, scenes, client=client, shard_size=4.0, progress=False)
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        edgemoe.evaluate(model, scenes, client=client, shard_size=0, progress=False)


def test_a_checkpoint_rewritten_while_loading_is_refused(tiny_checkpoint, tiny_model, monkeypatch):
    from edgemoe import model as model_module

    real = model_module.load_state_dict

    def load_then_rewrite(path):
        loaded = real(path)
        shard = tiny_checkpoint / "1.pth"
        shard.write_bytes(shard.read_bytes() + b"\0")  # a trainer saving over it meanwhile
        return loaded

    monkeypatch.setattr(model_module, "load_state_dict", load_then_rewrite)
    with pytest.raises(CheckpointError, match="changed on disk while it was being loaded"):
        _load_tiny(tiny_checkpoint, tiny_model.cfg)
