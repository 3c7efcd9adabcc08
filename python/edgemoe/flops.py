"""Analytic FLOP counts (1 multiply-add = 2 FLOPs) for one task's forward pass."""
from __future__ import annotations

from .config import ModelConfig


def backbone_flops(c: ModelConfig, batch: int = 1) -> float:
    D, N = c.embed_dim, c.num_tokens
    h, w = c.grid
    macs = h * w * D * 3 * c.patch_size ** 2  # patch embedding
    for block in range(c.depth):
        macs += N * D * 3 * D + 2 * N * N * D + N * D * D  # qkv, q.k^T and p.v over all heads, proj
        if block in c.moe_blocks:
            macs += N * D * c.num_experts + c.top_k * N * 2 * D * c.expert_hidden  # gate, k experts per token
        else:
            macs += N * 2 * D * c.mlp_hidden
    return 2.0 * macs * batch


def head_flops(c: ModelConfig, task: str, batch: int = 1) -> float:
    h, w = c.grid
    C, D = c.head_channels, c.embed_dim
    macs = h * w * C * D * 9
    for i in (1, 2, 3):
        macs += (h << i) * (w << i) * C * C * 9
    macs += (8 * h) * (8 * w) * C * c.out_channels(task)
    return 2.0 * macs * batch


def task_flops(c: ModelConfig, task: str, batch: int = 1) -> float:
    return backbone_flops(c, batch) + head_flops(c, task, batch)
