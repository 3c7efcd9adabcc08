"""Issue 20, classes 8 and 9: CLI arguments that make no sense are refused without a traceback, no
command overwrites or half-writes a result unless asked, and a trace keeps the forward pass's contract."""
import subprocess
import sys

import pytest
import torch

import edgemoe
from edgemoe import train as training
from edgemoe.train import SYNTHETIC_CONFIG


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgemoe", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps"), (["--steps", "-5"], "--steps"), (["--batch-size", "0"], "--batch-size"),
    (["--max-minutes", "nan"], "--max-minutes"), (["--max-minutes", "-1"], "--max-minutes"),
])
def test_train_refuses_bad_arguments(tmp_path, args, message):
    done = _cli("train", "--out", tmp_path / "ckpt", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ckpt").exists()


def test_train_api_refuses_before_training(tmp_path):
    for kwargs in ({"steps": 0}, {"batch_size": 0}, {"max_minutes": float("nan")}, {"steps": True}):
        with pytest.raises(ValueError):
            training.train(tmp_path / "x", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_train_never_replaces_without_force_and_writes_whole(tmp_path, monkeypatch):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "5.pth").write_bytes(b"stale")
    done = _cli("train", "--out", out, "--steps", "1", "--batch-size", "1")
    assert done.returncode == 1 and "exists" in done.stderr and "--force" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["5.pth"]
    # A failure while writing leaves the old directory as it was and no partial one beside it.
    config = SYNTHETIC_CONFIG.__class__(**{**SYNTHETIC_CONFIG.__dict__, "depth": 2, "moe_blocks": (1,),
                                           "head_channels": 8, "provenance": ()})

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(training, "write_yaml_config", broken)
    with pytest.raises(OSError, match="disk full"):
        training.train(out, steps=1, batch_size=1, config=config, progress=False, log_every=0, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"] and sorted(p.name for p in out.iterdir()) == ["5.pth"]
    monkeypatch.undo()
    training.train(out, steps=1, batch_size=1, config=config, progress=False, log_every=0, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["0.pth", "1.pth", "config.yml"]  # no stale 5.pth
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert edgemoe.Model.from_checkpoint(out).config.depth == 2


def test_noop_xclbin_does_not_overwrite(tmp_path):
    if not hasattr(edgemoe._C, "metadata_xclbin"):
        pytest.skip("this build has no XRT support")
    target = tmp_path / "noop.xclbin"
    target.write_bytes(b"mine")
    done = _cli("noop-xclbin", target)
    assert done.returncode == 1 and "--force" in done.stderr and target.read_bytes() == b"mine"
    assert _cli("noop-xclbin", target, "--force").returncode == 0 and target.read_bytes()[:7] == b"xclbin2"


def test_evaluate_reference_refuses_fpga_options(tmp_path):
    done = _cli("evaluate", "--backend", "reference", "--xclbin", tmp_path / "x.xclbin", "--data", "synthetic:1")
    assert done.returncode == 1 and "--xclbin" in done.stderr and "Traceback" not in done.stderr


def test_trace_refuses_what_forward_refuses():
    model = edgemoe.Model.pretrained()
    x = torch.full((1, 3, *model.config.image_size), 3e38)
    with pytest.raises(ValueError, match="overflowed float32"):
        model(x, task="semseg")
    with pytest.raises(ValueError, match="overflowed float32"):
        model.trace(x, task="semseg")


def test_compare_refuses_empty_and_reordered_traces():
    model = edgemoe.Model.pretrained()
    trace = model.trace(edgemoe.imaging.sample_input(model.config.image_size), "sal")
    empty = edgemoe.Trace([], "cpu", "sal")
    with pytest.raises(ValueError, match="nothing to compare"):
        edgemoe.compare(empty, empty)
    reordered = edgemoe.Trace(list(reversed(list(trace.items()))), "cpu", "sal")
    with pytest.raises(ValueError, match="another order"):
        edgemoe.compare(trace, reordered)
    assert edgemoe.compare(trace, trace).first_divergence is None
