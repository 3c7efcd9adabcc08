"""Which accelerator build can hold a model: the maxima of the emulation build and of each FPGA board build.

A kernel build is sized at compile time (kernels/config/<build>.h): every on-chip buffer is as large as
the largest model it must hold, so a model wider, longer or with more heads or experts than its
config allows cannot run on it. The native core refuses such a model with "the accelerator cannot run
this model: ..." (csrc/backends/accel/kernel_build.cpp, check_fits_build); this module states the same
limits in Python, so a user can see which board a model needs before building an xclbin, and so that
a model placed on ``emu`` that no board could hold is flagged (emu's build is larger than any board's).
"""
from __future__ import annotations

import functools
import warnings
from typing import Dict, List

from .errors import BoardLimitWarning

# The emulation build ("emu" runs it) is not a board; every other kernel build is one FPGA board's.
EMULATION_BUILD = "emu"

# Below this width the accelerator's LayerNorm cannot represent 1/D (kernel_build.cpp); the same for every build.
MIN_WIDTH = 64

# What each limit is called in messages and tables. The config macro that sets it is derived from the
# field's name, as the native check names it (kernel_build.cpp: max_dim -> EDGEMOE_MAX_DIM).
LIMIT_NAMES = {
    "max_dim": "width",
    "max_tokens": "tokens (1 + patches)",
    "max_heads": "heads",
    "max_depth": "depth (blocks)",
    "max_mlp_hidden": "dense MLP hidden width",
    "max_experts": "experts",
    "max_expert_hidden": "expert hidden width",
    "max_top_k": "top-k",
    "max_tasks": "tasks",
    "max_patch_in": "patch input (3 x P x P)",
    # The task heads on the device (heads="device"); a model beyond these runs its heads on the host.
    "max_head_channels": "task-head channels",
    "max_head_out": "task-head outputs per task",
    "max_map_w": "task-head map width (8 x grid)",
}


def config_macro(field: str) -> str:
    return "EDGEMOE_" + field.upper()


@functools.lru_cache(maxsize=None)
def _native_records():
    """Each linked build's own kernel answers the build query (kernels/src/build_record.h): once per
    process, since it runs under the emulated compute unit's lock."""
    from . import _C

    return _C.kernel_builds()


def kernel_builds() -> Dict[str, dict]:
    """{build: its limits} for "emu" and each FPGA board build: the maxima (``max_dim`` ... ``max_patch_in``,
    named as in the kernels' build record), ``attn_lanes`` (head dimensions must be multiples of it),
    ``activation_word_elements`` (widths must be multiples of it), ``min_width``, ``device`` (the FPGA part,
    None for emu) and ``config`` (the header that sets them)."""
    records = {name: dict(record) for name, record in _native_records().items()}
    for name, limits in records.items():
        limits["device"] = None if name == EMULATION_BUILD else limits.get("device")  # emu runs on the CPU
        limits["min_width"] = MIN_WIDTH
        limits["config"] = f"kernels/config/{name}.h"
    return records


def board_names(builds: Dict[str, dict]) -> List[str]:
    """The FPGA board builds among ``builds`` (all but the emulation build)."""
    return [name for name in builds if name != EMULATION_BUILD]


def misfits(config, limits: dict) -> List[str]:
    """Why a kernel build with ``limits`` cannot run a model of ``config`` (an edgemoe.ModelConfig): one
    phrase per broken limit, empty when it fits. The same checks, in the same order, as the native
    check_fits_build."""
    c = config
    dense = any(b not in c.moe_blocks for b in range(c.depth))
    reasons = []

    def at_most(key, value):
        if value > limits[key]:
            what, macro = LIMIT_NAMES[key], config_macro(key)
            reasons.append(f"{what} {value} > {macro} = {limits[key]}")

    at_most("max_dim", c.embed_dim)
    if c.embed_dim < limits["min_width"]:
        reasons.append(f"width {c.embed_dim} < the minimum {limits['min_width']}")
    at_most("max_tokens", c.num_tokens)
    at_most("max_heads", c.num_heads)
    head_dim = c.embed_dim // c.num_heads
    if head_dim % limits["attn_lanes"]:
        reasons.append(f"head dimension {head_dim} is not a multiple of EDGEMOE_ATTN_LANES = {limits['attn_lanes']}")
    word = limits["activation_word_elements"]
    for what, width, used in (("width", c.embed_dim, True), ("dense MLP hidden width", c.mlp_hidden, dense),
                              ("expert hidden width", c.expert_hidden, bool(c.moe_blocks))):
        if used and width % word:
            reasons.append(f"{what} {width} is not a multiple of {word} (512-bit activation words)")
    at_most("max_depth", c.depth)
    at_most("max_mlp_hidden", c.mlp_hidden)
    at_most("max_experts", c.num_experts)
    at_most("max_expert_hidden", c.expert_hidden)
    at_most("max_top_k", c.top_k)
    at_most("max_tasks", len(c.tasks))
    at_most("max_patch_in", 3 * c.patch_size * c.patch_size)
    return reasons


def boards_that_fit(config) -> List[str]:
    """The FPGA board builds that can hold a model of ``config``."""
    builds = kernel_builds()
    return [name for name in board_names(builds) if not misfits(config, builds[name])]


def warn_if_no_board_fits(model) -> None:
    """On ``emu``, one BoardLimitWarning when no FPGA board build could run the model: emu's build is
    sized beyond every board (ViT-B), so a model can run there and still need a board config that does
    not exist yet. Silent on other backends (fpga refuses a misfit itself; cpu has no limits)."""
    if model.backend != "emu":
        return
    builds = kernel_builds()
    reasons = {name: misfits(model.config, builds[name]) for name in board_names(builds)}
    if all(reasons.values()):
        why = "; ".join(f"{name}: {', '.join(r)}" for name, r in reasons.items())
        warnings.warn(f"this model fits no FPGA board build, so it runs on emu only ({why}); a board needs a "
                      f"kernels/config/<board>.h sized for it (edgemoe.info()['boards'] lists the builds)",
                      BoardLimitWarning, stacklevel=3)


def format_boards(builds: Dict[str, dict]) -> str:
    """The builds side by side: one row per limit (the "which board do I need" table of `edgemoe info`)."""
    names = list(builds)
    rows = [("device", [builds[n]["device"] or "CPU emulation" for n in names])]
    rows += [(LIMIT_NAMES[key], [str(builds[n][key]) for n in names]) for key in LIMIT_NAMES]
    rows.append(("head dim multiple of", [str(builds[n]["attn_lanes"]) for n in names]))
    rows.append(("widths multiple of", [str(builds[n]["activation_word_elements"]) for n in names]))
    label = max(len(r[0]) for r in rows)
    cell = max(max(len(v) for _, vals in rows for v in vals), max(len(n) for n in names))
    lines = [f"  {'limit':<{label}}  " + "  ".join(f"{n:>{cell}}" for n in names)]
    lines += [f"  {r:<{label}}  " + "  ".join(f"{v:>{cell}}" for v in vals) for r, vals in rows]
    return "\n".join(lines)
