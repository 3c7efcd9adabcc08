"""M3ViT's inference in plain torch, written from shared/spec/m3vit.md and nothing of edgemoe: the rank
files merged by hand (§5.2), the hyper-parameters read from the YAML, every layer in
torch.nn.functional (§1-2). tests/test_trained.py scores edgemoe against it, so a loader or model bug
shared by edgemoe's reference and its backends cannot pass unseen."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge", "depth")  # = the gate index (§1.4)


def merged_rank_files(directory: Path) -> dict:
    """0.pth's state_dict with every expert tensor concatenated over 1.pth, 2.pth, ... (§5.2)."""
    files = sorted(Path(directory).glob("*.pth"), key=lambda p: int(p.stem))
    # edgemoe's own shipped checkpoint, so torch.load's full unpickler is acceptable here (best_result
    # holds numpy scalars, which weights_only refuses)
    shards = [torch.load(f, map_location="cpu")["state_dict"] for f in files]
    strip = lambda key: key[len("module."):] if key.startswith("module.") else key  # noqa: E731
    merged = {strip(k): v for k, v in shards[0].items()}
    for shard in shards[1:]:
        for key, value in shard.items():
            merged[strip(key)] = torch.cat([merged[strip(key)], value], 0)
    return merged


class PlainM3ViT:
    def __init__(self, directory: Path, yaml_path: Path):
        self.w = merged_rank_files(directory)
        kwargs = yaml.safe_load(Path(yaml_path).read_text())["backbone_kwargs"]
        self.heads, self.top_k = int(kwargs["num_heads"]), int(kwargs["moe_top_k"])
        self.image_size = tuple(kwargs["img_size"])
        self.depth = 1 + max(int(k.split(".")[2]) for k in self.w if k.startswith("backbone.blocks."))
        self.tasks = [t for t in TASK_ORDER if f"decoders.{t}.conv_4.weight" in self.w]

    def _ln(self, x, prefix):
        return F.layer_norm(x, x.shape[-1:], self.w[prefix + ".weight"], self.w[prefix + ".bias"], eps=1e-6)

    def _attention(self, x, p):
        B, N, D = x.shape
        hd = D // self.heads
        qkv = F.linear(x, self.w[p + "qkv.weight"], self.w[p + "qkv.bias"]).reshape(B, N, 3, self.heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * hd ** -0.5, dim=-1)
        return F.linear((attn @ v).transpose(1, 2).reshape(B, N, D), self.w[p + "proj.weight"], self.w[p + "proj.bias"])

    def _moe(self, x, p, gate):
        B, N, D = x.shape
        X = x.reshape(B * N, D)
        probs = torch.softmax(X @ self.w[f"{p}gate.{gate}.w_gate"], dim=-1)  # over all experts, no bias
        score, index = torch.topk(probs, self.top_k, dim=-1)                 # not renormalised
        W1, b1 = self.w[p + "experts.htoh4.weight"], self.w[p + "experts.htoh4.bias"]
        W2, b2 = self.w[p + "experts.h4toh.weight"], self.w[p + "experts.h4toh.bias"]
        out = torch.zeros_like(X)
        for e in range(W1.shape[0]):
            y = F.linear(F.gelu(F.linear(X, W1[e], b1[e])), W2[e], b2[e])
            out += (score * (index == e)).sum(-1, keepdim=True) * y
        return out.reshape(B, N, D)

    def _head(self, x, task, grid):
        p = f"decoders.{task}."
        x = self._ln(x[:, 1:], p + "norm")  # 1 + h*w tokens: the cls token is dropped
        B, _, D = x.shape
        x = x.transpose(1, 2).reshape(B, D, *grid)
        for c in range(4):
            x = F.conv2d(x, self.w[f"{p}conv_{c}.weight"], self.w[f"{p}conv_{c}.bias"], padding=1)
            bn = f"{p}syncbn_fc_{c}."
            x = F.batch_norm(x, self.w[bn + "running_mean"], self.w[bn + "running_var"], self.w[bn + "weight"],
                             self.w[bn + "bias"], training=False, eps=1e-5)
            x = F.relu(x)
            if c < 3:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, self.w[p + "conv_4.weight"], self.w[p + "conv_4.bias"])
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, task: str) -> torch.Tensor:
        gate = self.tasks.index(task)
        x = F.conv2d(images, self.w["backbone.patch_embed.proj.weight"], self.w["backbone.patch_embed.proj.bias"],
                     stride=16)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.w["backbone.cls_token"].expand(x.shape[0], -1, -1), x], 1) + self.w["backbone.pos_embed"]
        for i in range(self.depth):
            p = f"backbone.blocks.{i}."
            x = x + self._attention(self._ln(x, p + "norm1"), p + "attn.")
            h = self._ln(x, p + "norm2")
            if p + "mlp.fc1.weight" in self.w:
                x = x + F.linear(F.gelu(F.linear(h, self.w[p + "mlp.fc1.weight"], self.w[p + "mlp.fc1.bias"])),
                                 self.w[p + "mlp.fc2.weight"], self.w[p + "mlp.fc2.bias"])
            else:
                x = x + self._moe(h, p + "mlp.", gate)
        return self._head(x, task, grid)


def miou(predictions: torch.Tensor, labels: torch.Tensor, classes: int) -> float:
    """Per class: pixels both call c over pixels either calls c (label 255 ignored), over the whole set;
    the mean over every class, a class that never occurs counting 0 (M3ViT's eval_semseg)."""
    valid = labels != 255
    total = 0.0
    for c in range(classes):
        pred_c, label_c = (predictions == c) & valid, (labels == c) & valid
        union = (pred_c | label_c).sum().item()
        total += (pred_c & label_c).sum().item() / union if union else 0.0
    return 100 * total / classes
