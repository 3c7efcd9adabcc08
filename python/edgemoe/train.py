"""Train a small M3ViT on the built-in synthetic scenes (CPU, deterministic for a given seed and
thread count): ``python -m edgemoe train --out DIR``.

The architecture is M3ViT's: a ViT whose odd blocks are mixture-of-experts MLPs with one gate per
task (multi-gate), and one ``VisionTransformerUpHead`` per task; only the sizes are small
(``SYNTHETIC_CONFIG``), so the checkpoint stays under 12 MB. Losses are M3ViT's (its
``get_loss`` / loss_functions): cross-entropy with ignore 255 for semseg and human parts, balanced
binary cross-entropy for saliency and edges (edge positive weight 0.95), L1 on the L2-normalised
output for normals, L1 on valid pixels for depth, weighted as its PASCAL config does for saliency
(5), normals (10) and edges (50) and its NYUD config for depth (1); the segmentation tasks weigh 4
(``LOSS_WEIGHTS`` says why). Each step runs the
backbone once per task (each task routes through its own gates), as M3ViT's multi-gate training
does, plus the mixture-of-experts balance loss (squared coefficient of variation of each gate's
expert importance). Differences from M3ViT's recipe, for a 30-minute CPU run from scratch: AdamW
instead of SGD from ImageNet weights, no gate noise, no TAM, no augmentation (every scene is new).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from .blas import single_threaded_blas
from .config import ModelConfig, write_yaml_config
from .data import SYNTHETIC_TASKS, SyntheticScenes, synthetic_scene, _to_item
from .progress import Progress
from .reference import M3ViT, MoEMlp

SYNTHETIC_CONFIG = ModelConfig(
    embed_dim=96, depth=6, num_heads=3, patch_size=16, image_size=(128, 256), mlp_hidden=384,
    moe_blocks=(1, 3, 5), num_experts=8, expert_hidden=192, top_k=2, gate="multi", gate_task_dim=0,
    gate_num_tasks=len(SYNTHETIC_TASKS), tasks=SYNTHETIC_TASKS, head_channels=32)
# M3ViT's PASCAL weights for saliency, normals and edges and its NYUD weight for depth; the two
# segmentation tasks weigh 4 here (M3ViT: 1 and 2), so that in a 30-minute run their share of the
# shared backbone's gradient is comparable to the dense tasks' (edge and normals weigh 50 and 10).
LOSS_WEIGHTS = {"semseg": 4.0, "human_parts": 4.0, "sal": 5.0, "normals": 10.0, "edge": 50.0, "depth": 1.0}
EDGE_POS_WEIGHT = 0.95
BALANCE_WEIGHT = 0.01
IGNORE = 255


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: Optional[float] = None) -> torch.Tensor:
    """M3ViT's BalancedCrossEntropyLoss: positives weighted by w (the batch's share of negatives, or
    ``pos_weight``), negatives by 1 - w, summed and divided by the element count; 255 ignored."""
    valid = target != IGNORE
    labels = (target >= 0.5).float()
    w = float((labels[valid] == 0).float().mean()) if pos_weight is None else pos_weight
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    per = torch.where(labels > 0, w * loss, (1 - w) * loss)
    return (per * valid).sum() / target.numel()


def task_loss(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task in ("semseg", "human_parts"):
        loss = F.cross_entropy(out, target, ignore_index=IGNORE)
        return torch.nan_to_num(loss)  # an all-ignored batch: 0, as M3ViT's loss scheme
    if task == "sal":
        return balanced_bce(out[:, 0], target)
    if task == "edge":
        return balanced_bce(out[:, 0], target, EDGE_POS_WEIGHT)
    if task == "normals":
        n = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
        valid = target != IGNORE
        return (n - target).abs()[valid].sum() / valid.sum().clamp_min(1)
    if task == "depth":
        valid = (target > 0) & (target != IGNORE)
        return (out[:, 0] - target).abs()[valid].sum() / valid.sum().clamp_min(1)
    raise ValueError(f"no loss for task {task!r}")


def balance_loss(model: M3ViT) -> torch.Tensor:
    total = torch.zeros(())
    for block in model.backbone.blocks:
        if isinstance(block.mlp, MoEMlp) and block.mlp.last_importance is not None:
            imp = block.mlp.last_importance
            total = total + imp.var(unbiased=False) / imp.mean().pow(2).clamp_min(1e-10)
    return total


def shared_prefix(model: M3ViT, images: torch.Tensor):
    """The task-independent part of the forward pass, run once per step for all tasks: the embedding
    and every block before the first MoE block (the same split the accelerator's host makes)."""
    bb = model.backbone
    x = bb.patch_embed(images)
    x = torch.cat([bb.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + bb.pos_embed
    first_moe = next((i for i, b in enumerate(bb.blocks) if isinstance(b.mlp, MoEMlp)), len(bb.blocks))
    for block in list(bb.blocks)[:first_moe]:
        x = block(x, 0)
    return x, first_moe


def task_suffix(model: M3ViT, x: torch.Tensor, first_moe: int, task_id: int) -> torch.Tensor:
    for block in list(model.backbone.blocks)[first_moe:]:
        x = block(x, task_id)
    return x


def initial_model(config: ModelConfig, seed: int) -> M3ViT:
    """M3ViT's initialisation (truncated normal 0.02 for linear layers and tokens, zero biases,
    LayerNorm 1/0), heads as PyTorch's defaults; each head's last bias at its target's mean."""
    torch.manual_seed(seed)
    model = M3ViT(config)
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if name.endswith("w_gate"):
                torch.nn.init.trunc_normal_(p, std=0.02)
            elif p.dim() >= 2 or name in ("cls_token", "pos_embed"):
                torch.nn.init.trunc_normal_(p, std=0.02)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        if "depth" in model.decoders:
            model.decoders["depth"].conv_4.bias.fill_(6.0)
    return model


def _check_train_arguments(out, steps, batch_size, max_minutes, force) -> None:
    """Everything a run could fail on after minutes of training, checked before it starts."""
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if max_minutes is not None:
        if isinstance(max_minutes, bool) or not isinstance(max_minutes, (int, float)) or not math.isfinite(max_minutes) \
                or max_minutes <= 0:
            raise ValueError(f"max_minutes must be a positive number of minutes, got {max_minutes!r}")
    if out is not None:
        out = Path(out)
        if out.exists() and not force:
            raise ValueError(f"{out} exists; pass force=True (--force) to replace it")
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} exists and is not a checkpoint directory; not replacing it")
        if not out.parent.is_dir():
            raise ValueError(f"{out.parent} is not a directory")


def _write_checkpoint(model: M3ViT, config: ModelConfig, out: Path, steps: int) -> None:
    """The rank shards and config.yml, complete or absent: written to a temporary directory beside
    ``out`` and renamed into place (an existing ``out``, already allowed by force, goes only then)."""
    import shutil
    import tempfile

    from .synthetic import save_m3vit_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        save_m3vit_checkpoint(model, tmp, layout="shards", world_size=2, with_tam=False, epoch=steps)
        write_yaml_config(config, tmp / "config.yml")  # heads, top-k, image size: not in the weights
        old = None
        if out.exists():
            old = out.with_name(tmp.name[:-len(".partial")] + ".replaced")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def train(out: Path, steps: int = 640, batch_size: int = 8, lr: float = 2e-3, seed: int = 0,
          threads: int = 2, log_every: int = 50, config: ModelConfig = SYNTHETIC_CONFIG,
          progress: bool = True, max_minutes: Optional[float] = None, force: bool = False) -> M3ViT:
    """Train for ``steps`` steps of ``batch_size`` fresh training scenes and save the checkpoint as
    M3ViT's rank-shard directory at ``out`` (``0.pth``, ``1.pth``) with the ``config.yml`` that
    from_checkpoint picks up; an existing ``out`` is replaced only with ``force``, and the directory is
    written whole or not at all. Returns the model (eval mode)."""
    _check_train_arguments(out, steps, batch_size, max_minutes, force)
    threads_before, deterministic_before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_before = torch.get_rng_state()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with single_threaded_blas():
            return _train(out, steps, batch_size, lr, seed, log_every, config, progress, max_minutes)
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_rng_state(rng_before)


def _train(out, steps, batch_size, lr, seed, log_every, config, progress, max_minutes) -> M3ViT:
    model = initial_model(config, seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    tasks = config.task_names
    bar = Progress(steps, "train") if progress else None
    start = time.perf_counter()
    running = {}
    for step in range(steps):
        items = [_to_item(synthetic_scene("train", step * batch_size + i, config.image_size)) for i in range(batch_size)]
        images = torch.stack([it["image"] for it in items])
        opt.zero_grad(set_to_none=True)
        total = torch.zeros(())
        prefix, first_moe = shared_prefix(model, images)
        for t in tasks:
            outp = model.decoders[t](task_suffix(model, prefix, first_moe, config.gate_index(t)), config.grid)
            target = torch.stack([it[t] for it in items])
            loss = task_loss(t, outp, target)
            running[t] = 0.9 * running.get(t, float(loss)) + 0.1 * float(loss)
            total = total + LOSS_WEIGHTS[t] * loss + BALANCE_WEIGHT * balance_loss(model)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        schedule.step()
        if bar:
            bar.step(f"loss {float(total):.3f}")
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: " + ", ".join(f"{t} {v:.3f}" for t, v in running.items()), flush=True)
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            raise RuntimeError(f"training exceeded {max_minutes} minutes at step {step + 1}")
    model.eval()
    if out is not None:
        _write_checkpoint(model, config, Path(out), steps)
    return model
