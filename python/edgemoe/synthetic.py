"""Seeded M3ViT models and checkpoints written exactly as M3ViT's training script lays them out
(rank shards, ``module.`` prefix, OrderedDict with ``_metadata``, numpy scalars in ``best_result``,
TAM and optimizer entries). No trained M3ViT weights are published, so tests, the demo and the
benchmark use these."""
from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .config import ModelConfig, TASK_ORDER
from .reference import M3ViT


def _tasks(*names_channels):
    return tuple(sorted(names_channels, key=lambda nc: TASK_ORDER.index(nc[0])))


PASCAL_TASKS = _tasks(("semseg", 21), ("human_parts", 7), ("sal", 1), ("normals", 3), ("edge", 1))
NYUD_TASKS = _tasks(("semseg", 40), ("depth", 1))


def preset(name: str) -> ModelConfig:
    """Named configurations: the README recipe's PASCAL/NYUD ViT-S, ViT-B, Edge-MoE's ViT-T, and a tiny one."""
    odd = lambda depth: tuple(range(1, depth, 2))  # noqa: E731
    common = dict(depth=12, patch_size=16, moe_blocks=odd(12), num_experts=16, gate="multi", gate_task_dim=0)
    presets = {
        "pascal-vit-s": dict(common, embed_dim=384, num_heads=12, image_size=(512, 512), mlp_hidden=1536,
                             expert_hidden=384, top_k=4, gate_num_tasks=5, tasks=PASCAL_TASKS),
        "nyud-vit-s": dict(common, embed_dim=384, num_heads=12, image_size=(480, 640), mlp_hidden=1536,
                           expert_hidden=384, top_k=4, gate_num_tasks=2, tasks=NYUD_TASKS),
        "pascal-vit-b": dict(common, embed_dim=768, num_heads=12, image_size=(512, 512), mlp_hidden=3072,
                             expert_hidden=768, top_k=4, gate_num_tasks=5, tasks=PASCAL_TASKS),
        # Edge-MoE's model: ViT-T, Cityscapes 128x256, 16 experts, top-2, expert hidden 384, two tasks.
        "cityscapes-vit-t": dict(common, embed_dim=192, num_heads=3, image_size=(128, 256), mlp_hidden=768,
                                 expert_hidden=384, top_k=2, gate_num_tasks=2,
                                 tasks=_tasks(("semseg", 7), ("depth", 1))),
        "tiny": dict(embed_dim=64, depth=4, num_heads=2, patch_size=16, image_size=(64, 96), mlp_hidden=128,
                     moe_blocks=(1, 3), num_experts=4, expert_hidden=64, top_k=2, gate="multi", gate_task_dim=0,
                     gate_num_tasks=3, tasks=_tasks(("semseg", 5), ("sal", 1), ("normals", 3)), head_channels=32),
    }
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(presets)}")
    return ModelConfig(**presets[name])


def seeded_model(config: ModelConfig, seed: int = 0) -> M3ViT:
    """A reference M3ViT with deterministic weights scaled like a trained network's: unit-variance
    activations, decisive routing, non-trivial BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    model = M3ViT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w_gate":
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / math.sqrt(p.shape[0])))
            elif name.endswith(("norm.weight", "norm1.weight", "norm2.weight")) or ".syncbn_fc_" in name and leaf == "weight":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif leaf == "bias" or name.endswith(("norm.bias", "norm1.bias", "norm2.bias")):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif leaf in ("cls_token", "pos_embed"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:  # weights [.., out, in(, kh, kw)]: variance-preserving
                fan_in = p[0].numel() if p.dim() == 2 or p.dim() == 4 else p.shape[-1]
                gain = math.sqrt(2.0) if ".conv_" in name else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / math.sqrt(fan_in)))
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
    return model.eval()


def _tam_entries(config: ModelConfig) -> Dict[str, torch.Tensor]:
    """Train-only TAM tensors with M3ViT's key pattern (zeros: only their presence matters)."""
    C, T = config.head_channels, len(config.tasks)
    out = {}
    for level in range(2):
        p = f"tam_model{level}"
        for layer, shape in (("layers0", (C, C * T, 3, 3)), ("layers2", (C, C * T, 3, 3)), ("encoder0", (C, C, 3, 3)),
                             ("decoder0", (C, C, 3, 3))):
            out[f"{p}.{layer}.0.weight"] = torch.zeros(shape)
            for stat in ("weight", "bias", "running_mean", "running_var"):
                out[f"{p}.{layer}.1.{stat}"] = torch.zeros(C)
            out[f"{p}.{layer}.1.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
        for task, _ in config.tasks:
            out[f"{p}.layers3.{task}.0.weight"] = torch.zeros(C, C * T, 3, 3)
            out[f"{p}.layers4.{task}.0.weight"] = torch.zeros(C, C, 1, 1)
    return out


def _as_saved(state: Dict[str, torch.Tensor], prefix: str) -> "collections.OrderedDict":
    out = collections.OrderedDict((prefix + k, v.detach().clone()) for k, v in state.items())
    out._metadata = collections.OrderedDict((prefix + k.rsplit(".", 1)[0], {"version": 1}) for k in state)
    return out


def _training_extras(state: Dict[str, torch.Tensor], epoch: int):
    names = list(state)
    optimizer = {
        "state": {i: {"momentum_buffer": torch.zeros_like(state[n])} for i, n in enumerate(names[:4])},
        "param_groups": [{"lr": 0.002, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0001, "nesterov": False,
                          "maximize": False, "foreach": None, "differentiable": False,
                          "params": list(range(len(names)))}],
    }
    best_result = {"semseg": {"mIoU": np.float64(0.4321)}, "multi_task_performance": np.mean([0.1, 0.2])}
    return {"epoch": epoch, "backbone": "VisionTransformer_moe", "best_result": best_result, "optimizer": optimizer}


def save_m3vit_checkpoint(model: M3ViT, path, *, layout: str = "shards", world_size: int = 2,
                          prefix: str = "module.", with_tam: bool = True, epoch: int = 99) -> Path:
    """Write ``model`` as M3ViT would.

    layout: "shards" (a directory of ``world_size`` rank files, experts split along dim 0),
    "file" (one .pth.tar with the training dict), "model" (``{'model': state_dict}``) or "bare"
    (just the state dict).
    """
    path = Path(path)
    state = dict(model.state_dict())
    if with_tam:
        state.update(_tam_entries(model.cfg))
    if layout == "bare":
        torch.save(_as_saved(state, prefix), path)
    elif layout == "model":
        torch.save({"model": _as_saved(state, prefix)}, path)
    elif layout == "file":
        torch.save(dict(_training_extras(state, epoch), state_dict=_as_saved(state, prefix)), path)
    elif layout == "shards":
        E = model.cfg.num_experts
        if world_size < 1 or E % world_size:
            raise ValueError(f"{E} experts cannot be split over {world_size} ranks")
        per_rank = E // world_size
        expert_keys = [k for k in state if ".mlp.experts." in k]
        path.mkdir(parents=True, exist_ok=True)
        for rank in range(world_size):
            local = {k: state[k][rank * per_rank:(rank + 1) * per_rank] for k in expert_keys}
            shard = dict(state, **local) if rank == 0 else local
            torch.save(dict(_training_extras(state, epoch), state_dict=_as_saved(shard, prefix)), path / f"{rank}.pth")
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return path


def cached_checkpoint(name: str, cache_dir, seed: int = 0, world_size: int = 2) -> Path:
    """A seeded checkpoint directory for a preset, written once and reused, in an M3ViT run directory
    with the preset's config.yml (its heads and top-k, which the checkpoint cannot record)."""
    from .config import write_yaml_config

    target = Path(cache_dir) / f"{name}-seed{seed}" / "checkpoint.pth.tar"
    if not (target / "0.pth").exists():
        tmp = target.with_name(target.name + ".partial")
        save_m3vit_checkpoint(seeded_model(preset(name), seed), tmp, world_size=world_size)
        tmp.rename(target)
    if not (target.parent / "config.yml").exists():
        write_yaml_config(preset(name), target.parent / "config.yml")
    return target


def random_images(config: ModelConfig, batch: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *config.image_size, generator=gen)


def pixel_images(config: ModelConfig, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random 8-bit photos through M3ViT's preprocessing: inputs the emu backend takes exactly."""
    from .imaging import preprocess

    rng = np.random.default_rng(seed)
    H, W = config.image_size
    return torch.cat([preprocess(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (H, W)) for _ in range(batch)])
