"""The built-in trained checkpoint (loads like any M3ViT checkpoint, has learned every task, routes by
task), edgemoe.evaluate on every backend and PyTorch, the evaluate CLI, and the training script."""
import dataclasses

import numpy as np
import pytest
import torch

import edgemoe
from edgemoe import data
from edgemoe.cli import main
from edgemoe import synthetic
from edgemoe.evaluation import routing_concentration, routing_statistics, routing_task_specificity, trivial_baseline
from edgemoe.metrics import METRICS
from edgemoe.reference import M3ViT
from edgemoe.train import SYNTHETIC_CONFIG, initial_model, train

SCENES = 16  # test scenes for the quality checks (a fraction of the README's 200, for speed)


@pytest.fixture(scope="module")
def ckpt():
    return data.trained_checkpoint()


@pytest.fixture(scope="module")
def reference(ckpt):
    return M3ViT.from_checkpoint(ckpt, config=data.trained_config())


@pytest.fixture(scope="module")
def scenes():
    return data.SyntheticScenes("test", SCENES, SYNTHETIC_CONFIG.image_size)


@pytest.fixture(scope="module")
def pytorch_metrics(reference, scenes):
    return edgemoe.evaluate(reference, scenes, progress=False)


def test_checkpoint_is_m3vit_rank_shards_under_12_mb(ckpt, reference):
    files = sorted(p.name for p in ckpt.iterdir())
    assert files == ["0.pth", "1.pth"]
    assert sum(p.stat().st_size for p in ckpt.iterdir()) <= 12 * 2 ** 20
    assert reference.cfg.tasks == SYNTHETIC_CONFIG.tasks and reference.cfg.moe_blocks == (1, 3, 5)
    assert reference.cfg.top_k == 2  # from the shipped config.yml (a checkpoint does not record it)
    model = edgemoe.Model.from_checkpoint(ckpt, config=data.trained_config())
    assert model.config == reference.cfg


# "Clearly beats", about half of what the model shows (16 scenes, notebooks/fpga_vs_pytorch.ipynb:
# +31 and +21.5 mIoU points, +0.18 maxF, +0.35 edge F, -18.6 degrees, -29 % RMSE; README on 200).
MARGIN = {"semseg": 15.0, "human_parts": 10.0, "sal": 0.1, "edge": 0.2, "normals": 10.0}
DEPTH_MARGIN = 0.2  # of the baseline's RMSE


def test_every_task_beats_the_trivial_baseline(scenes, pytorch_metrics):
    base = trivial_baseline(scenes, channels=SYNTHETIC_CONFIG.out_channels)
    for task in SYNTHETIC_CONFIG.task_names:
        value, margin = pytorch_metrics[task], MARGIN.get(task, DEPTH_MARGIN * base[task])
        if METRICS[task][2]:  # higher is better
            assert value > base[task] + margin, (task, value, base[task])
        else:
            assert value < base[task] - margin, (task, value, base[task])


def test_routing_is_task_specific(reference):
    stats = routing_statistics(reference, data.SyntheticScenes("test", 4, SYNTHETIC_CONFIG.image_size))
    assert set(stats) == set(reference.tasks)
    for task, layers in stats.items():
        assert sorted(layers) == [1, 3, 5]
        for share in layers.values():
            assert share.shape == (8,) and share.sum() == pytest.approx(1.0)
            assert 0 <= routing_concentration(share) <= 1
    # at least one layer where two tasks prefer different experts
    differ = any(np.argmax(stats[a][layer]) != np.argmax(stats[b][layer])
                 for layer in (1, 3, 5) for a in stats for b in stats)
    assert differ


def test_routing_is_task_specific_beyond_image_variation(reference):
    """Between-task divergence of the expert shares is several times the image-to-image divergence of
    one task (16 scenes: 6.9 - 14.7; 32 scenes, README: 17 - 20); a shared gate gives exactly 1."""
    spec = routing_task_specificity(reference, data.SyntheticScenes("test", 16, SYNTHETIC_CONFIG.image_size))
    assert sorted(spec) == [1, 3, 5] and min(spec.values()) > 3, spec
    shared = dataclasses.replace(synthetic.preset("tiny"), gate="shared", gate_num_tasks=0)
    model = synthetic.seeded_model(shared, seed=0)
    spec = routing_task_specificity(model, data.SyntheticScenes("test", 4, shared.image_size))
    assert all(v == pytest.approx(1.0) for v in spec.values()), spec


@pytest.mark.parametrize("backend", ["cpu", "emu"])
def test_backends_match_pytorch_metrics(ckpt, scenes, pytorch_metrics, backend):
    """The README's targets for emu (backbone and task heads on the accelerator) against fp32 PyTorch (0.5
    mIoU points, 0.005 maxF, 0.2 degrees, 1 % RMSE; issue 22 asks 0.5, 0.01, 0.2, 1 %) on the test scenes;
    cpu is fp32 itself and must be far tighter."""
    model = edgemoe.Model.from_checkpoint(ckpt, backend=backend, config=data.trained_config())
    ours = edgemoe.evaluate(model, scenes, progress=False)
    assert set(ours) == set(pytorch_metrics)
    scale = 0.02 if backend == "cpu" else 1.0
    tolerance = {"semseg": 0.5, "human_parts": 0.5, "sal": 0.005, "edge": 0.005, "normals": 0.2}
    for task, value in ours.items():
        if task == "depth":
            assert abs(value - pytorch_metrics[task]) <= 0.01 * scale * pytorch_metrics[task], task
        else:
            assert abs(value - pytorch_metrics[task]) <= tolerance[task] * scale, (task, value, pytorch_metrics[task])


def test_evaluate_arguments(ckpt, reference, scenes):
    with pytest.raises(TypeError, match="edgemoe.Model"):
        edgemoe.evaluate(object(), scenes)
    with pytest.raises(ValueError, match="batch_size"):
        edgemoe.evaluate(reference, scenes, batch_size=0)
    with pytest.raises(ValueError, match="takes"):
        edgemoe.evaluate(reference, data.SyntheticScenes("test", 2, (64, 128)))
    with pytest.raises(ValueError, match="unknown task"):
        edgemoe.evaluate(reference, scenes, tasks=["keypoints"])
    only = edgemoe.evaluate(reference, data.SyntheticScenes("test", 2), tasks=["sal"], progress=False)
    assert list(only) == ["sal"]


def test_evaluate_cli(ckpt, capsys):
    assert main(["evaluate", "--data", "synthetic:2", "--backend", "cpu", "--task", "semseg", "--task", "depth"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "RMSE" in out and "2 images" in out
    assert main(["evaluate", "--checkpoint", str(ckpt), "--config", str(data.trained_config()), "--data",
                 "synthetic:2", "--backend", "reference", "--task", "normals"]) == 0
    assert "angle" in capsys.readouterr().out
    assert main(["evaluate", "--data", "nowhere:1"]) == 1
    assert "synthetic:N" in capsys.readouterr().err


def test_training_is_deterministic_and_writes_a_loadable_checkpoint(tmp_path):
    tiny = dataclasses.replace(SYNTHETIC_CONFIG, embed_dim=64, depth=2, num_heads=2, image_size=(64, 128),
                               mlp_hidden=64, moe_blocks=(1,), num_experts=4, expert_hidden=32, head_channels=8)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    a = train(tmp_path / "a", steps=2, batch_size=2, config=tiny, progress=False, log_every=0)
    b = train(None, steps=2, batch_size=2, config=tiny, progress=False, log_every=0)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    untrained = initial_model(tiny, 0)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), untrained.parameters()))
    model = edgemoe.Model.from_checkpoint(tmp_path / "a", image_size=(64, 128))
    x = data.SyntheticScenes("test", 1, (64, 128))[0]["image"][None]
    with torch.no_grad():
        assert torch.allclose(model(x, task="depth"), a(x, "depth"), atol=1e-4, rtol=1e-4)


def test_single_threaded_blas_pins_openblas_and_restores_it():
    from edgemoe.blas import _openblas, single_threaded_blas

    lib = _openblas()
    assert lib is not None, "torch's BLAS here is OpenBLAS (the Makefile installs libopenblas0-pthread)"
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(2)  # so that a missing restore shows
    try:
        with single_threaded_blas():
            assert lib.openblas_get_num_threads() == 1
        assert lib.openblas_get_num_threads() == 2
    finally:
        lib.openblas_set_num_threads(before)


def test_an_independent_pytorch_path_agrees(ckpt, scenes, pytorch_metrics):
    """edgemoe against M3ViT written out in plain torch from the spec (tests/m3vit_plain.py: the rank files
    merged by hand, the YAML read by hand) and an mIoU written apart from edgemoe.metrics: the loader,
    the reference model and the metric code cannot share a bug with what they check."""
    from conftest import MAX_REL_ERR, max_rel_err
    from m3vit_plain import PlainM3ViT, miou

    plain = PlainM3ViT(ckpt, data.trained_config())
    model = edgemoe.Model.from_checkpoint(ckpt, backend="cpu", config=data.trained_config())
    assert tuple(plain.tasks) == tuple(model.tasks) and plain.image_size == tuple(model.config.image_size)
    items = [scenes[i] for i in range(len(scenes))]
    images = torch.stack([item["image"] for item in items])
    for task in plain.tasks:
        ours = model(images, task=task)
        theirs = plain(images, task)
        assert max_rel_err(ours, theirs) <= MAX_REL_ERR, task
        if task in ("semseg", "human_parts"):
            labels = torch.stack([item[task] for item in items])
            independent = miou(theirs.argmax(1), labels, theirs.shape[1])
            # the same predictions up to pixels whose top two logits tie within fp32 noise
            assert abs(independent - pytorch_metrics[task]) <= 0.05, (task, independent, pytorch_metrics[task])
