"""The emulated accelerator (backend="emu"): the HLS kernels compiled for the CPU, fed exactly the
buffers an FPGA would get. Accuracy contract against the fp32 CPU backend, per configuration:
  backbone output NMSE = sum((emu - cpu)^2) / sum(cpu^2) <= 1e-4, and
  semantic-segmentation argmax agreement >= 99.5 % of pixels.
Inputs are real 8-bit images through edgemoe.preprocess (the kernel reads 8-bit pixels)."""
import dataclasses

import numpy as np
import pytest
import torch

import edgemoe
from edgemoe import synthetic

NMSE_BOUND = 1e-4
ARGMAX_BOUND = 0.995


pixel_images = synthetic.pixel_images


def nmse(a, b):
    return (((a - b) ** 2).sum() / (b ** 2).sum()).item()


def compare(cfg, seed=1, batch=1, tasks=None):
    ref = synthetic.seeded_model(cfg, seed)
    state = dict(ref.state_dict())
    cpu, emu = edgemoe.Model(cfg, state, "cpu"), edgemoe.Model(cfg, state, "emu")
    x = pixel_images(cfg, batch, seed)
    results = {}
    for task in tasks or cfg.task_names:
        results[task] = {"nmse": nmse(emu.features(x, task), cpu.features(x, task))}
        if task == "semseg":
            agree = (emu(x, task=task).argmax(1) == cpu(x, task=task).argmax(1)).float().mean().item()
            results[task]["argmax"] = agree
    return results, emu


def assert_within_contract(results):
    for task, r in results.items():
        assert r["nmse"] <= NMSE_BOUND, (task, r)
        if "argmax" in r:
            assert r["argmax"] >= ARGMAX_BOUND, (task, r)


TINY = synthetic.preset("tiny")
VARIANTS = {
    "tiny-multi-gate": TINY,
    "tiny-task-conditioned": dataclasses.replace(TINY, gate="task_conditioned", gate_task_dim=16),
    "tiny-no-moe": dataclasses.replace(TINY, moe_blocks=(), num_experts=0, expert_hidden=0, top_k=0, gate="shared",
                                       gate_num_tasks=0),
    "tiny-head-dim-64": dataclasses.replace(TINY, embed_dim=128, num_heads=2, expert_hidden=96, mlp_hidden=256),
    "tiny-top-4-of-4": dataclasses.replace(TINY, top_k=4),
    "tiny-head-dim-48": dataclasses.replace(TINY, embed_dim=96, num_heads=2),
    "tiny-vit-b-width": dataclasses.replace(TINY, embed_dim=768, num_heads=12, depth=2, moe_blocks=(1,), mlp_hidden=3072,
                                            expert_hidden=768, image_size=(32, 48)),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_tiny_variants(name):
    results, _ = compare(VARIANTS[name], batch=2)
    assert_within_contract(results)


def test_edge_moe_vit_t_cityscapes():
    """Edge-MoE's own model: ViT-T, 128x256, 16 experts, top-2, two tasks."""
    results, _ = compare(synthetic.preset("cityscapes-vit-t"))
    assert_within_contract(results)


def cpu_and_emu(preset, cache):
    ckpt = synthetic.cached_checkpoint(preset, cache)
    return edgemoe.Model.from_checkpoint(ckpt), edgemoe.Model.from_checkpoint(ckpt, backend="emu")


@pytest.mark.slow
def test_pascal_vit_s(big_cache):
    cpu, emu = cpu_and_emu("pascal-vit-s", big_cache)
    x = pixel_images(cpu.config, 1, 3)
    assert nmse(emu.features(x, "semseg"), cpu.features(x, "semseg")) <= NMSE_BOUND
    agree = (emu(x, task="semseg").argmax(1) == cpu(x, task="semseg").argmax(1)).float().mean().item()
    assert agree >= ARGMAX_BOUND


@pytest.mark.slow
def test_nyud_vit_s_at_the_token_maximum(big_cache):
    """480x640: 1201 tokens, the emulation build's EDGEMOE_MAX_TOKENS."""
    cpu, emu = cpu_and_emu("nyud-vit-s", big_cache)
    x = pixel_images(cpu.config, 1, 4)
    out_emu = emu(x, tasks=emu.tasks)
    out_cpu = cpu(x, tasks=cpu.tasks)
    assert (out_emu["semseg"].argmax(1) == out_cpu["semseg"].argmax(1)).float().mean().item() >= ARGMAX_BOUND
    assert nmse(emu.features(x, "depth"), cpu.features(x, "depth")) <= NMSE_BOUND


def test_moe_trace_shows_each_active_expert_fetched_once():
    cfg = synthetic.preset("cityscapes-vit-t")
    ref = synthetic.seeded_model(cfg, 2)
    emu = edgemoe.Model(cfg, dict(ref.state_dict()), "emu")
    x = pixel_images(cfg, 2, 2)
    emu(x, task="depth")
    trace = emu.moe_trace("depth")
    assert trace.shape == (2, len(cfg.moe_blocks), 3, cfg.num_experts)
    tokens, fc1, fc2 = trace[:, :, 0], trace[:, :, 1], trace[:, :, 2]
    assert (tokens.sum(-1) == cfg.num_tokens * cfg.top_k).all()  # every token routed to k experts, cls included
    active = tokens > 0
    assert (fc1[active] == 1).all() and (fc2[active] == 1).all()  # fetched once per layer (per image)
    assert (fc1[~active] == 0).all() and (fc2[~active] == 0).all()  # inactive experts cost nothing
    assert (~active).any(), "this input should leave some expert idle in some layer"
    # The routing the kernel did matches the PyTorch reference's (up to near-tie decisions).
    routing = ref.routing(x, "depth")
    for j, block in enumerate(cfg.moe_blocks):
        experts, _ = routing[block]
        expected = torch.bincount(experts.reshape(2, -1, cfg.top_k).reshape(2, -1)[0], minlength=cfg.num_experts)
        assert np.abs(tokens[0, j] - expected.numpy()).sum() <= 4, (block, tokens[0, j], expected)


def test_cpu_has_no_trace(tiny_model):
    model = edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()))
    assert model.moe_trace("semseg") is None


def test_deterministic_batch_and_multi_task_sharing(tiny_model):
    cfg = tiny_model.cfg
    emu = edgemoe.Model(cfg, dict(tiny_model.state_dict()), "emu")
    x = pixel_images(cfg, 2, 5)
    together = emu(x, tasks=emu.tasks)
    for task in emu.tasks:
        single = emu(x, task=task)
        assert torch.equal(single, together[task]), task  # the shared prefix changes nothing
        assert torch.equal(single, emu(x, task=task))      # bit-reproducible
        assert torch.equal(emu(x[1:], task=task), single[1:])  # images are independent


def test_to_emu_and_back(tiny_model):
    cfg = tiny_model.cfg
    model = edgemoe.Model(cfg, dict(tiny_model.state_dict()))
    x = pixel_images(cfg, 1, 6)
    on_cpu = model.features(x, "sal")
    assert model.to("emu").backend == "emu"
    assert nmse(model.features(x, "sal"), on_cpu) <= NMSE_BOUND
    assert torch.equal(model.to("cpu").features(x, "sal"), on_cpu)


def test_from_checkpoint_with_emu(tiny_checkpoint):
    model = edgemoe.Model.from_checkpoint(tiny_checkpoint, backend="emu", num_heads=2, top_k=2, image_size=(64, 96))
    assert model.backend == "emu"
    assert model(pixel_images(model.config, 1, 0), task="normals").shape == (1, 3, 64, 96)


@pytest.mark.parametrize("change, limit", [
    (dict(embed_dim=1024, num_heads=16, depth=2, moe_blocks=(1,), mlp_hidden=128, expert_hidden=64,
          image_size=(32, 32)), "EDGEMOE_MAX_DIM = 768"),
    (dict(image_size=(16 * 40, 16 * 40), depth=2, moe_blocks=(1,)), "EDGEMOE_MAX_TOKENS = 1201"),
    (dict(num_heads=16, embed_dim=128, depth=2, moe_blocks=(1,), image_size=(32, 32)), "EDGEMOE_MAX_HEADS = 12"),
    (dict(embed_dim=96, num_heads=8, depth=2, moe_blocks=(1,)), "head dimension 12 .* EDGEMOE_ATTN_LANES = 8"),
])
def test_model_too_large_for_the_build(change, limit):
    cfg = dataclasses.replace(TINY, **change)
    state = dict(synthetic.seeded_model(cfg, 0).state_dict())
    with pytest.raises(ValueError, match=limit):
        edgemoe.Model(cfg, state, "emu")
