"""Model hyper-parameters: derived from a checkpoint's tensors, completed by user overrides,
an M3ViT YAML config, or documented defaults."""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import warnings
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

from .errors import CheckpointError, ConfigWarning

# M3ViT's fixed task order (utils/config.py); the position among the tasks present is the task id
# that selects the router.
TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge", "depth")

# Token grids whose factorisation M3ViT uses (pos_embed length - 1 -> rows x cols).
KNOWN_GRIDS = {1024: (32, 32), 1200: (30, 40), 128: (8, 16)}

# Dataset names in M3ViT configs -> input size (H, W).
DATASET_IMAGE_SIZE = {"PASCALContext": (512, 512), "NYUD": (480, 640), "Cityscapes": (128, 256)}

DEFAULT_TOP_K = 4  # M3ViT README recipe (--moe_top_k 4)


def default_num_heads(embed_dim: int) -> int:
    """Heads M3ViT's configs use: 3 for ViT-T (192), 12 for ViT-S (384) and ViT-B (768)."""
    return {192: 3, 384: 12, 768: 12}.get(embed_dim, max(1, embed_dim // 64))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    image_size: Tuple[int, int]
    mlp_hidden: int
    moe_blocks: Tuple[int, ...]
    num_experts: int
    expert_hidden: int
    top_k: int
    gate: str  # "multi", "task_conditioned" or "shared"
    gate_task_dim: int
    gate_num_tasks: int
    tasks: Tuple[Tuple[str, int], ...]  # (name, output channels) in M3ViT's task order
    head_channels: int = 256
    # Where each hyper-parameter came from ("weights", "keyword", "file <path>", "default ..."): shown by
    # str(config), ignored by ==.
    provenance: Tuple[Tuple[str, str], ...] = dataclasses.field(default=(), compare=False, repr=False)

    def source(self, field: str) -> str:
        # A config built by hand (no provenance) was given its heads, top-k and size by its maker.
        default = "given" if field in ("num_heads", "top_k", "image_size") else "weights"
        return dict(self.provenance).get(field, default)

    @property
    def grid(self) -> Tuple[int, int]:
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_tokens(self) -> int:
        h, w = self.grid
        return 1 + h * w

    @property
    def task_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.tasks)

    def out_channels(self, task: str) -> int:
        return dict(self.tasks)[task]

    def gate_index(self, task: str) -> int:
        return self.task_names.index(task)

    def to_native(self) -> dict:
        """The dict the C++ core takes (edgemoe._C.Model)."""
        h, w = self.grid
        return {
            "embed_dim": self.embed_dim, "depth": self.depth, "num_heads": self.num_heads,
            "patch_size": self.patch_size, "grid_h": h, "grid_w": w, "mlp_hidden": self.mlp_hidden,
            "moe_blocks": list(self.moe_blocks), "num_experts": self.num_experts,
            "expert_hidden": self.expert_hidden, "top_k": self.top_k, "gate": self.gate,
            "gate_task_dim": self.gate_task_dim, "gate_num_tasks": self.gate_num_tasks,
            "head_channels": self.head_channels,
            "tasks": [(name, ch, self.gate_index(name)) for name, ch in self.tasks],
        }

    def __str__(self) -> str:
        h, w = self.grid
        rows = [
            ("width (embed_dim)", self.embed_dim),
            ("depth", self.depth),
            ("heads", f"{self.num_heads} (head dim {self.embed_dim // self.num_heads})", "num_heads"),
            ("patch", self.patch_size),
            ("image (H x W)", f"{self.image_size[0]} x {self.image_size[1]}", "image_size"),
            ("tokens", f"{self.num_tokens} = 1 cls + {h} x {w}"),
            ("dense MLP hidden", self.mlp_hidden),
            ("MoE blocks", ", ".join(map(str, self.moe_blocks)) or "none"),
            ("experts", self.num_experts),
            ("expert hidden", self.expert_hidden),
            ("top-k", self.top_k, "top_k"),
            ("gate", self.gate + (f" (task feature {self.gate_task_dim})" if self.gate == "task_conditioned" else "")),
            ("tasks", ", ".join(f"{n}[{c}]" for n, c in self.tasks)),
            ("head channels", self.head_channels),
        ]
        width = max(len(row[0]) for row in rows)
        values = [str(row[1]) for row in rows]
        column = min(24, max(map(len, values)))
        lines = []
        for row, value in zip(rows, values):
            source = self.source(row[2]) if len(row) > 2 else "weights"
            lines.append(f"  {row[0]:<{width}}  {value:<{column}}  <- {source}")
        return "ModelConfig (value <- where it came from)\n" + "\n".join(lines)


def _shape(state: Mapping, key: str, ndim: int) -> Tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"checkpoint has no '{key}'; is this an M3ViT checkpoint?")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"checkpoint key '{key}' has shape {shape}, expected a {ndim}-D tensor")
    return shape


SUPPORTED_PATCH = 16  # every M3ViT head upsamples its token grid by exactly 2^4
MAX_BLOCKS = 4096


def check_int(value, name: str, minimum: int = 1) -> int:
    """An int argument (bool is refused: top_k=True is a mistake, not 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r:.40}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_image_size(value, name: str = "image_size") -> Tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (H, W) of ints, got {value!r:.60}")
    return check_int(value[0], f"{name}[0]"), check_int(value[1], f"{name}[1]")


MAX_CONFIG_BYTES = 1 << 20
CONFIG_NAMES = ("config.yml", "config.yaml")
MAX_CONFIG_CANDIDATES = 16  # YAML files read to find the one config in a folder (a run directory holds one or two)


def find_config(checkpoint) -> Optional[Path]:
    """The M3ViT YAML config that lies next to a checkpoint, or None.

    Looked for in the checkpoint directory itself (``edgemoe train`` writes it there) and then in the
    directory that holds the checkpoint (M3ViT's run directory, where the built-in model keeps it):
    ``config.yml``/``config.yaml`` first, else the one ``*.yml``/``*.yaml`` there that supplies heads,
    top-k or image size (other YAML files, and dotfiles, are not configs). Several configs and none
    named config.yml -> None with a warning.
    """
    path = Path(checkpoint)
    folders = [path, path.parent] if path.is_dir() else [path.parent]
    for folder in folders:
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and not p.name.startswith(".")
                           and p.is_file() and not p.is_symlink())
        except OSError:
            continue
        named = [p for p in files if p.name in CONFIG_NAMES][:1]
        if not named and len(files) > MAX_CONFIG_CANDIDATES:
            warnings.warn(f"{folder} holds {len(files)} YAML files and none is named config.yml: none is read; "
                          f"pass config=", ConfigWarning, stacklevel=4)
            return None
        configs = []
        for candidate in named or files:  # only files that set a hyper-parameter are configs
            try:
                if read_yaml_config(candidate):
                    configs.append(candidate)
            except ValueError as exc:
                warnings.warn(f"ignoring {candidate} found next to the checkpoint: {exc}", ConfigWarning, stacklevel=4)
        if len(configs) == 1:
            return configs[0]
        if len(configs) > 1:
            warnings.warn(f"{folder} holds several M3ViT configs ({', '.join(p.name for p in configs[:5])}) and none is "
                          f"named config.yml: none is used; pass config=", ConfigWarning, stacklevel=4)
            return None
    return None


def read_yaml_config(path) -> dict:
    """The few hyper-parameters an M3ViT YAML config can supply (safe_load: data only)."""
    import yaml

    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"config file {path} is over {MAX_CONFIG_BYTES // 1024} KiB; an M3ViT config is a few KiB")
        raw = yaml.safe_load(text.decode("utf-8"))
    except (OSError, UnicodeError, RecursionError, yaml.YAMLError) as exc:
        raise ValueError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} is not an M3ViT YAML config (top level is not a mapping)")
    kwargs = raw.get("backbone_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"config file {path}: backbone_kwargs is not a mapping")
    out = {}

    def field(value, name, check):
        try:
            return check(value, name)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config file {path}: {exc}") from None

    heads = kwargs.get("num_heads", raw.get("num_heads"))
    if heads is not None:
        out["num_heads"] = field(heads, "num_heads", check_int)
    top_k = kwargs.get("moe_top_k", raw.get("moe_top_k"))
    if top_k is not None:
        out["top_k"] = field(top_k, "moe_top_k", check_int)
    head_kwargs = raw.get("head_kwargs") if isinstance(raw.get("head_kwargs"), dict) else {}
    size = kwargs.get("img_size") or head_kwargs.get("img_size")
    if size is None and isinstance(raw.get("val_db_name"), str) and raw["val_db_name"] in DATASET_IMAGE_SIZE:
        size = DATASET_IMAGE_SIZE[raw["val_db_name"]]
    if size is not None:
        out["image_size"] = field(size if isinstance(size, (list, tuple)) else (size, size), "img_size",
                                  check_image_size)
    return out


def _grid_from_tokens(patches: int, patch: int, image_size: Optional[Sequence[int]]) -> Tuple[int, int]:
    if patches < 1:
        raise CheckpointError("backbone.pos_embed holds no patch positions (it needs 1 cls + h*w rows)")
    if image_size is not None:
        H, W = image_size
        if H % patch or W % patch or (H // patch) * (W // patch) != patches:
            raise ValueError(
                f"image_size {H}x{W} does not match the checkpoint: pos_embed holds {patches} patch "
                f"positions of {patch}x{patch} pixels, but {H}x{W} gives {(H // patch) * (W // patch)}")
        return H // patch, W // patch
    if patches in KNOWN_GRIDS:
        return KNOWN_GRIDS[patches]
    side = math.isqrt(patches)
    if side * side == patches:
        return side, side
    raise ValueError(f"cannot tell the image size from {patches} patch positions; pass image_size=(H, W)")


def derive_config(state: Mapping, *, top_k=None, num_heads=None, image_size=None, yaml_config=None,
                  warn_defaults: bool = False) -> ModelConfig:
    """Build the config from a normalised state dict (keys without 'module.'), recording where each
    hyper-parameter came from; ``warn_defaults`` warns (ConfigWarning) when heads or top-k are guesses."""
    overrides = read_yaml_config(yaml_config) if yaml_config is not None else {}
    provenance = {name: f"file {yaml_config}" for name in overrides}
    for name, value, check in (("top_k", top_k, check_int), ("num_heads", num_heads, check_int),
                               ("image_size", image_size, check_image_size)):
        if value is not None:
            overrides[name] = check(value, name)
            provenance[name] = "keyword"

    _, tokens, D = _shape(state, "backbone.pos_embed", 3)
    pD, in_chans, P, P2 = _shape(state, "backbone.patch_embed.proj.weight", 4)
    if pD != D or P != P2 or in_chans != 3 or D < 1:
        raise CheckpointError(f"backbone.patch_embed.proj.weight has shape {(pD, in_chans, P, P2)}, "
                              f"expected ({D}, 3, P, P) for width {D}")
    if P != SUPPORTED_PATCH:
        raise CheckpointError(f"backbone.patch_embed.proj.weight has {P}x{P} patches; M3ViT's heads upsample "
                              f"by 16, so the supported patch size is {SUPPORTED_PATCH}")
    gh, gw = _grid_from_tokens(tokens - 1, P, overrides.get("image_size"))
    if "image_size" not in provenance:
        provenance["image_size"] = (f"weights (pos_embed: {tokens - 1} positions, M3ViT's {gh} x {gw} grid)"
                                    if tokens - 1 in KNOWN_GRIDS else f"weights (pos_embed: a square {gh} x {gw} grid)")

    block_ids = set()
    for key in state:
        match = re.match(r"backbone\.blocks\.(\d+)\.", key)
        if match:
            if len(match.group(1)) > 4 or int(match.group(1)) >= MAX_BLOCKS:
                raise CheckpointError(f"checkpoint key '{key}' names block {match.group(1)[:30]}; edgemoe "
                                      f"supports at most {MAX_BLOCKS} blocks")
            block_ids.add(int(match.group(1)))
    block_ids = sorted(block_ids)
    if not block_ids:
        raise CheckpointError("checkpoint has no backbone.blocks.*; is this an M3ViT checkpoint?")
    depth = block_ids[-1] + 1
    moe_blocks = tuple(b for b in block_ids if f"backbone.blocks.{b}.mlp.experts.htoh4.weight" in state)
    dense = [b for b in range(depth) if b not in moe_blocks]
    mlp_hidden = _shape(state, f"backbone.blocks.{dense[0]}.mlp.fc1.weight", 2)[0] if dense else 0

    num_experts = expert_hidden = gate_task_dim = gate_num_tasks = 0
    gate = "shared"
    if moe_blocks:
        num_experts, expert_hidden, _ = _shape(state, f"backbone.blocks.{moe_blocks[0]}.mlp.experts.htoh4.weight", 3)
        first = f"backbone.blocks.{moe_blocks[0]}.mlp.gate"
        routers = sorted({int(m.group(1)) for k in state
                          for m in [re.match(re.escape(first) + r"\.(\d{1,3})\.w_gate$", k)] if m})
        if routers:
            gate, gate_num_tasks = "multi", len(routers)
            if routers != list(range(len(routers))):
                raise CheckpointError(f"MoE block {moe_blocks[0]} has routers {routers}; expected "
                                      f"{first}.0.w_gate .. {first}.{len(routers) - 1}.w_gate")
        elif "backbone.gate_task_represent.fc1.weight" in state:
            gate = "task_conditioned"
            gate_task_dim, gate_num_tasks = _shape(state, "backbone.gate_task_represent.fc1.weight", 2)
        elif f"{first}.w_gate" not in state:
            raise CheckpointError(f"MoE block {moe_blocks[0]} has no router: neither '{first}.<task>.w_gate' nor '{first}.w_gate'")
        gate_width = _shape(state, f"{first}.{routers[0]}.w_gate" if routers else f"{first}.w_gate", 2)[1]
        if gate_width != num_experts:
            raise CheckpointError(
                f"the router of block {moe_blocks[0]} scores {gate_width} experts but the checkpoint holds "
                f"{num_experts} (a missing or extra rank file in a sharded checkpoint?)")
        if num_experts < 1 or expert_hidden < 1:
            raise CheckpointError(f"backbone.blocks.{moe_blocks[0]}.mlp.experts.htoh4.weight holds no experts")

    names = sorted({m.group(1) for k in state for m in [re.match(r"decoders\.([^.]+)\.conv_4\.weight$", k)] if m},
                   key=lambda n: TASK_ORDER.index(n) if n in TASK_ORDER else len(TASK_ORDER))
    unknown = [n for n in names if n not in TASK_ORDER]
    if unknown:
        raise CheckpointError(f"unknown task head(s) {unknown}; M3ViT tasks are {list(TASK_ORDER)}")
    if not names:
        raise CheckpointError("checkpoint has no task heads (decoders.<task>.*)")
    tasks = tuple((n, _shape(state, f"decoders.{n}.conv_4.weight", 4)[0]) for n in names)
    head_channels = _shape(state, f"decoders.{names[0]}.conv_0.weight", 4)[0]
    channels = [(f"decoders.{n}.conv_4.weight", c) for n, c in tasks] + [(f"decoders.{names[0]}.conv_0.weight", head_channels)]
    if dense:
        channels.append((f"backbone.blocks.{dense[0]}.mlp.fc1.weight", mlp_hidden))
    for key, count in channels:
        if count < 1:
            raise CheckpointError(f"checkpoint key '{key}' has no output channels")
    if gate in ("multi", "task_conditioned") and gate_num_tasks != len(tasks):
        raise CheckpointError(f"the gate is conditioned on {gate_num_tasks} tasks but the checkpoint has "
                              f"{len(tasks)} task heads ({', '.join(names)})")

    heads = overrides.get("num_heads", default_num_heads(D))
    if D % heads:
        raise ValueError(f"num_heads={heads} does not divide the width {D}")
    k = overrides.get("top_k", min(DEFAULT_TOP_K, num_experts) if moe_blocks else 0)
    if moe_blocks:
        if not 1 <= k <= num_experts:
            raise ValueError(f"top_k={k} must be between 1 and the number of experts ({num_experts})")
    # What the weights cannot confirm, guessed from M3ViT's recipe: said once, since a wrong guess runs a
    # different model without any error.
    guessed = []
    if "num_heads" not in provenance:
        provenance["num_heads"] = f"default (M3ViT's heads for width {D})"
        guessed.append(f"num_heads={heads}")
    if "top_k" not in provenance:
        if moe_blocks:
            provenance["top_k"] = "default (M3ViT README: --moe_top_k 4)"
            guessed.append(f"top_k={k}")
        else:
            provenance["top_k"] = "weights (no MoE block)"
    if guessed and warn_defaults:
        verb = "are M3ViT's defaults" if len(guessed) > 1 else "is M3ViT's default"
        warnings.warn(f"{' and '.join(guessed)} {verb}, not read from "
                      f"the checkpoint (a checkpoint does not record {'them' if len(guessed) > 1 else 'it'}); if the "
                      f"model was trained otherwise it runs wrong without an error: pass config= (the run's YAML) "
                      f"or {'/'.join(g.split('=')[0] + '=' for g in guessed)}", ConfigWarning, stacklevel=4)
    return ModelConfig(
        embed_dim=D, depth=depth, num_heads=heads, patch_size=P, image_size=(gh * P, gw * P),
        mlp_hidden=mlp_hidden, moe_blocks=moe_blocks, num_experts=num_experts, expert_hidden=expert_hidden,
        top_k=k, gate=gate, gate_task_dim=gate_task_dim, gate_num_tasks=gate_num_tasks, tasks=tasks,
        head_channels=head_channels, provenance=tuple(sorted(provenance.items())))


def checkpoint_config(state: Mapping, path, *, top_k=None, num_heads=None, image_size=None, config=None) -> ModelConfig:
    """The config of the checkpoint at ``path``: its weights, the keywords, then ``config`` (an M3ViT
    YAML file; None: the one found next to the checkpoint, find_config; False: none), then defaults."""
    if isinstance(config, str) and not config:
        raise ValueError("config file '': an empty path (config=False loads without one)")
    if config is not None:
        return derive_config(state, top_k=top_k, num_heads=num_heads, image_size=image_size,
                             yaml_config=None if config is False else config, warn_defaults=True)
    found = find_config(path)
    try:
        return derive_config(state, top_k=top_k, num_heads=num_heads, image_size=image_size, yaml_config=found,
                             warn_defaults=True)
    except ValueError as exc:
        if found is None or isinstance(exc, CheckpointError):
            raise
        raise ValueError(f"{exc} (with the config found next to the checkpoint, {found}; config=False ignores "
                         f"it)") from None


def write_yaml_config(config: ModelConfig, path) -> None:
    """The M3ViT YAML config of ``config``: what its checkpoint cannot record (heads, top-k, image size),
    in the keys read_yaml_config reads and M3ViT's configs use (backbone_kwargs)."""
    H, W = config.image_size
    Path(path).write_text(
        "# M3ViT-style YAML config: the hyper-parameters a checkpoint does not record. edgemoe finds it\n"
        "# next to the checkpoint (Model.from_checkpoint); M3ViT reads the same backbone_kwargs.\n"
        "backbone_kwargs:\n"
        f"  num_heads: {config.num_heads}\n"
        f"  moe_top_k: {config.top_k}\n"
        f"  img_size: [{H}, {W}]\n")
