"""A plain, readable PyTorch M3ViT: the numerical oracle for every test and the PyTorch peer in
the benchmark. Module names follow M3ViT, so ``state_dict()`` keys equal M3ViT's (without
``module.``) and the same checkpoint files load into it.

Math (shared/spec/m3vit.md): pre-norm ViT blocks (LayerNorm eps 1e-6, exact-erf GELU), MoE MLPs on
the configured blocks with a softmax-over-all-experts gate, top-k without renormalisation, the cls
token routed too; no final norm; per-task heads of LayerNorm + 4 x (conv3x3, BN, ReLU, bilinear x2
except after the last) + conv1x1 + bilinear x2.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

LN_EPS = 1e-6
BN_EPS = 1e-5


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # row-major tokens


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (D // self.heads) ** -0.5
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ExpertLinear(nn.Module):
    """FastMoE's FMoELinear: weight [E, out, in], bias [E, out]."""

    def __init__(self, experts: int, out_features: int, in_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(experts, out_features))


class Experts(nn.Module):
    def __init__(self, experts: int, dim: int, hidden: int):
        super().__init__()
        self.htoh4 = ExpertLinear(experts, hidden, dim)
        self.h4toh = ExpertLinear(experts, dim, hidden)

    def forward(self, x, e: int):
        h = F.gelu(x @ self.htoh4.weight[e].t() + self.htoh4.bias[e])
        return h @ self.h4toh.weight[e].t() + self.h4toh.bias[e]


class Gate(nn.Module):
    """NoisyGate_VMoE at inference: logits = x @ w_gate (no bias, no noise)."""

    def __init__(self, in_features: int, experts: int):
        super().__init__()
        self.w_gate = nn.Parameter(torch.empty(in_features, experts))


class MoEMlp(nn.Module):
    """After each forward, ``last_routing`` holds (experts [T, k], margin [T]): the chosen experts per
    token and the gap between the k-th and (k+1)-th gate probabilities. A token whose margin is
    within fp32 rounding can be routed either way by an implementation that sums differently."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.last_routing = None
        self.last_importance = None
        D, E = cfg.embed_dim, cfg.num_experts
        self.top_k = cfg.top_k
        if cfg.gate == "multi":
            self.gate = nn.ModuleList(Gate(D, E) for _ in range(cfg.gate_num_tasks))
        else:
            self.gate = Gate(D + cfg.gate_task_dim, E)
        self.experts = Experts(E, D, cfg.expert_hidden)

    def gate_probs(self, tokens, task_id: int, task_feature=None):
        """[T, D] tokens -> [T, E] the gate's softmax over all experts."""
        if isinstance(self.gate, nn.ModuleList):
            logits = tokens @ self.gate[task_id].w_gate
        elif task_feature is not None:
            logits = torch.cat([tokens, task_feature.expand(tokens.shape[0], -1)], dim=1) @ self.gate.w_gate
        else:
            logits = tokens @ self.gate.w_gate
        return logits.softmax(dim=-1)

    def forward(self, x, task_id: int, task_feature=None):
        B, N, D = x.shape
        tokens = x.reshape(B * N, D)  # routing is per token, across the whole batch, cls included
        probs = self.gate_probs(tokens, task_id, task_feature)
        # Training (edgemoe.train): each expert's share of the gate probability, for the balance loss.
        self.last_importance = probs.sum(0) if self.training else None
        score, expert = probs.topk(self.top_k, dim=-1)  # not renormalised
        if self.top_k < probs.shape[-1]:
            margin = score[:, -1] - probs.topk(self.top_k + 1, dim=-1).values[:, -1]
        else:
            margin = torch.full_like(score[:, 0], float("inf"))
        self.last_routing = (expert, margin)
        out = torch.zeros_like(tokens)
        for e in range(self.experts.htoh4.weight.shape[0]):
            rows, slot = (expert == e).nonzero(as_tuple=True)
            if len(rows):
                out[rows] += score[rows, slot, None] * self.experts(tokens[rows], e)
        return out.reshape(B, N, D)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, moe: bool):
        super().__init__()
        D = cfg.embed_dim
        self.norm1 = nn.LayerNorm(D, eps=LN_EPS)
        self.attn = Attention(D, cfg.num_heads)
        self.norm2 = nn.LayerNorm(D, eps=LN_EPS)
        self.mlp = MoEMlp(cfg) if moe else Mlp(D, cfg.mlp_hidden)

    def forward(self, x, task_id: int, task_feature=None):
        x = x + self.attn(self.norm1(x))
        h = self.norm2(x)
        return x + (self.mlp(h, task_id, task_feature) if isinstance(self.mlp, MoEMlp) else self.mlp(h))


class TaskRepresentation(nn.Module):
    """M3ViT's new_Mlp for the task-conditioned gate: one-hot -> fc1 -> GELU -> fc2 -> LayerNorm."""

    def __init__(self, tasks: int, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(tasks, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, one_hot):
        return self.norm(self.fc2(F.gelu(self.fc1(one_hot))))


class VisionTransformerMoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.embed_dim
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, D))
        self.patch_embed = PatchEmbed(cfg.patch_size, D)
        if cfg.gate == "task_conditioned":
            self.gate_task_represent = TaskRepresentation(cfg.gate_num_tasks, cfg.gate_task_dim)
        self.blocks = nn.Sequential(*(Block(cfg, i in cfg.moe_blocks) for i in range(cfg.depth)))

    def forward(self, x, task_id: int):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        feature = None
        if hasattr(self, "gate_task_represent"):
            one_hot = F.one_hot(torch.tensor([task_id]), self.cfg.gate_num_tasks).to(x.dtype)
            feature = self.gate_task_represent(one_hot)
        for block in self.blocks:
            x = block(x, task_id, feature)
        return x  # no final norm; the cls token is still there


class UpHead(nn.Module):
    def __init__(self, dim: int, channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        for i in range(4):
            setattr(self, f"conv_{i}", nn.Conv2d(dim if i == 0 else channels, channels, 3, padding=1))
            setattr(self, f"syncbn_fc_{i}", nn.BatchNorm2d(channels, eps=BN_EPS))
        self.conv_4 = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, grid):
        x = self.norm(x[:, 1:])  # drop cls
        B, _, D = x.shape
        x = x.transpose(1, 2).reshape(B, D, *grid)
        for i in range(4):
            x = F.relu(getattr(self, f"syncbn_fc_{i}")(getattr(self, f"conv_{i}")(x)))
            if i < 3:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv_4(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class M3ViT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = VisionTransformerMoE(cfg)
        self.decoders = nn.ModuleDict(
            {name: UpHead(cfg.embed_dim, cfg.head_channels, ch) for name, ch in cfg.tasks})

    @property
    def tasks(self):
        return self.cfg.task_names

    def features(self, images, task: str):
        return self.backbone(images, self.cfg.gate_index(task))

    @torch.no_grad()
    def trace(self, images, task: str):
        """The named intermediates of edgemoe.trace (same names and shapes as edgemoe.Model.trace), the
        same math as forward, step by step."""
        from .trace import Trace

        if not isinstance(task, str) or task not in self.decoders:
            raise ValueError(f"unknown task {task!r}; this model has tasks {list(self.tasks)}")
        was_training = self.training
        self.eval()  # inference statistics; BatchNorm's running averages stay as they are
        try:
            return Trace(self._trace(images, task), "PyTorch", task)
        finally:
            self.train(was_training)

    def _trace(self, images, task: str):
        cfg, bb, head = self.cfg, self.backbone, self.decoders[task]
        task_id = cfg.gate_index(task)
        out = {}
        x = bb.patch_embed(images)
        x = torch.cat([bb.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + bb.pos_embed
        out["embed"] = x
        feature = None
        if hasattr(bb, "gate_task_represent"):
            feature = bb.gate_task_represent(F.one_hot(torch.tensor([task_id]), cfg.gate_num_tasks).to(x.dtype))
        for i, block in enumerate(bb.blocks):
            branch = block.attn(block.norm1(x))
            out[f"block{i}.attn"] = branch
            x = x + branch
            h = block.norm2(x)
            if isinstance(block.mlp, MoEMlp):
                B, N, D = h.shape
                probs = block.mlp.gate_probs(h.reshape(B * N, D), task_id, feature)
                experts = probs.topk(cfg.top_k, dim=-1).indices  # best first
                out[f"block{i}.gate_probs"] = probs.reshape(B, N, -1)
                out[f"block{i}.experts"] = experts.reshape(B, N, -1)
                out[f"block{i}.tokens_per_expert"] = torch.stack(
                    [torch.bincount(e.flatten(), minlength=cfg.num_experts) for e in experts.reshape(B, -1)])
                branch = block.mlp(h, task_id, feature)
            else:
                branch = block.mlp(h)
            out[f"block{i}.mlp"] = branch
            x = x + branch
            out[f"block{i}.out"] = x
        y = head.norm(x[:, 1:])
        y = y.transpose(1, 2).reshape(y.shape[0], -1, *cfg.grid)
        out["head.norm"] = y
        for i in range(4):
            y = F.relu(getattr(head, f"syncbn_fc_{i}")(getattr(head, f"conv_{i}")(y)))
            if i < 3:
                y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            out[f"head.stage{i}"] = y
        y = head.conv_4(y)
        out["head.logits"] = y
        out["output"] = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        return out

    def forward(self, images, task: str):
        return self.decoders[task](self.features(images, task), self.cfg.grid)

    @torch.no_grad()
    def routing(self, images, task: str):
        """{MoE block index: (experts [B*N, k], top-k margin [B*N])} for one task's forward pass."""
        self.features(images, task)
        return {i: b.mlp.last_routing for i, b in enumerate(self.backbone.blocks) if isinstance(b.mlp, MoEMlp)}

    def near_ties(self, images, task: str, threshold: float = 1e-6) -> int:
        """Routing decisions (token, MoE block) whose top-k margin is below ``threshold``: where fp32
        implementations may legitimately pick different experts."""
        return sum(int((margin < threshold).sum()) for _, margin in self.routing(images, task).values())

    @classmethod
    def from_checkpoint(cls, path, *, top_k=None, num_heads=None, image_size=None, config=None) -> "M3ViT":
        """Loads an M3ViT checkpoint (any format edgemoe.Model accepts) into the reference model; the
        hyper-parameters come as in edgemoe.Model.from_checkpoint (a config next to the checkpoint included)."""
        from .checkpoint import load_state_dict
        from .config import checkpoint_config

        state, _ = load_state_dict(path)
        cfg = checkpoint_config(state, path, top_k=top_k, num_heads=num_heads, image_size=image_size, config=config)
        model = cls(cfg)
        model.load_state_dict(state, strict=True)
        return model.eval()

    @classmethod
    def pretrained(cls) -> "M3ViT":
        """The built-in trained model (edgemoe.Model.pretrained) in PyTorch."""
        from .data import trained_checkpoint

        return cls.from_checkpoint(trained_checkpoint())
