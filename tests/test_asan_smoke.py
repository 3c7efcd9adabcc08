"""The native code paths of tiny models on every backend, small enough to run under ASan + UBSan
(`make test-asan` runs this file and tests/test_safety.py against the sanitized extension)."""
import os

import pytest
import torch

import edgemoe
from edgemoe import synthetic

from conftest import tiny_config

CONFIGS = {
    "multi-gate": tiny_config(),
    "task-conditioned": tiny_config(gate="task_conditioned", gate_task_dim=16),
    "no-moe": tiny_config(moe_blocks=(), num_experts=0, expert_hidden=0, top_k=0, gate="shared", gate_num_tasks=0),
}


def test_the_extension_under_test_is_the_sanitized_one():
    """make test-asan sets EDGEMOE_EXPECT_SANITIZED: it must not silently test the normal build."""
    expected = os.environ.get("EDGEMOE_EXPECT_SANITIZED") == "1"
    assert edgemoe._C.build_info()["sanitizers"] == expected


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_backend_runs_every_task_batched(name):
    cfg = CONFIGS[name]
    state = dict(synthetic.seeded_model(cfg, 7).state_dict())
    x = synthetic.pixel_images(cfg, 2, seed=7)
    outputs = {}
    for backend in ("cpu", "emu"):
        model = edgemoe.Model(cfg, state, backend, num_threads=min(2, os.cpu_count() or 1))
        outputs[backend] = model(x, tasks=model.tasks)
        assert model.features(x, "sal").shape == (2, cfg.num_tokens, cfg.embed_dim)
        if backend == "emu" and cfg.moe_blocks:
            assert model.moe_trace("semseg").shape == (2, len(cfg.moe_blocks), 3, cfg.num_experts)
    for task, out in outputs["cpu"].items():
        assert out.shape == outputs["emu"][task].shape and torch.isfinite(outputs["emu"][task]).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_traces_of_every_backend(name):
    """Model.trace's native paths: the cpu recorder and head stages, the accelerator's stage-by-stage
    read-back and host gate replay."""
    cfg = CONFIGS[name]
    state = dict(synthetic.seeded_model(cfg, 5).state_dict())
    x = synthetic.pixel_images(cfg, 2, seed=5)
    cpu, emu = (edgemoe.Model(cfg, state, b, num_threads=min(2, os.cpu_count() or 1)).trace(x, "semseg")
                for b in ("cpu", "emu"))
    assert list(cpu) == list(emu) and list(cpu)[-1] == "output"
    for name_, tensor in emu.items():
        assert tensor.shape == cpu[name_].shape and torch.isfinite(tensor.double()).all(), name_
