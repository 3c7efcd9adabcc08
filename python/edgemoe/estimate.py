"""The accelerator's modelled latency and resources on a board (Model.estimate, `python -m edgemoe estimate`).

The native side runs the board's own build of the kernel (its MAC array, lanes and maxima) in emulation on
real images with the cycle ledger attached (kernels/src/cycle_ledger.h): every pipelined loop reports its trip
count, the II and depth its pragma declares (kernels/src/schedule.h), the bytes it moves on which m_axi bundle
at the port's beat width, and its MACs. A loop takes max(trips x II, memory cycles) + depth (+ the read
latency once per run when it touches DDR/HBM); loops add up, except inside a DATAFLOW region, which takes its
slowest process. MoE load is the routing of the given images. The task's head is modelled too when it runs on
the device (the default; rows head.stage0 .. output), else the backbone only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from . import _C

# Published figures to print next to the model (../shared/spec/accelerator.md): Edge-MoE, ViT-T 128x256 on
# the ZCU102 at 300 MHz.
EDGE_MOE_ZCU102_MS = {"measured": 59.0, "ideal": 17.0}
# Issue 21's targets, (board, clock MHz) -> ms: ViT-T top-2 on the ZCU102, PASCAL ViT-S top-4 backbone on
# the U280 at its default clock.
TARGETS_MS = {("zcu102", 300): 12.0, ("zcu102", 250): 15.0, ("u280", 225): 80.0}
RESOURCE_BUDGET = 0.80
# Issue 22's end-to-end targets (backbone + one task's 256-channel head), (board, clock MHz) -> ms, at the
# clock the model justifies for each board (its default).
END_TO_END_TARGETS_MS = {("zcu102", 250): 45.0, ("u280", 225): 150.0}
# The ZCU102's host, a 1.2 GHz quad Cortex-A53: its fp32 peak, GFLOP/s (4 cores x 2 fp32 FMA lanes of a
# 64-bit NEON datapath x 2 FLOP x 1.2 GHz).
A53_PEAK_GFLOPS = 19.0


# The task head's stages (kernels/src/cycle_ledger.h: kHeadStage + k), named as edgemoe.trace names them.
HEAD_STAGE = _C.LEDGER_HEAD_STAGE
HEAD_STAGE_NAMES = ("head.stage0", "head.stage1", "head.stage2", "head.stage3", "head.logits", "output")


def stage_name(stage: int) -> str:
    if stage < 0:
        return "embed"
    if HEAD_STAGE <= stage < HEAD_STAGE + len(HEAD_STAGE_NAMES):
        return HEAD_STAGE_NAMES[stage - HEAD_STAGE]
    return f"block {stage // 2} {'attn' if stage % 2 == 0 else 'mlp'}"


@dataclass
class UnitEstimate:
    stage: int
    unit: str
    cycles: int
    compute_cycles: int
    memory_cycles: int
    bytes: int
    macs: int
    mac_slots: int
    loop_runs: int
    clock_mhz: int
    single_beat_bytes: int = 0

    @property
    def milliseconds(self) -> float:
        return self.cycles / (self.clock_mhz * 1e3)

    @property
    def mac_utilisation(self) -> Optional[float]:
        """Useful MACs over the unit's MAC lanes x cycles; None for units without MACs."""
        return self.macs / self.mac_slots if self.mac_slots else None

    @property
    def transfers(self) -> str:
        """How the unit's loops reach memory: 'burst', 'single-beat' (one transaction per beat: the address
        pattern HLS cannot burst; kernels/src/cycle_ledger.h), 'mixed', or '' when it moves nothing."""
        if not self.bytes:
            return ""
        if not self.single_beat_bytes:
            return "burst"
        return "single-beat" if self.single_beat_bytes == self.bytes else "mixed"

    @property
    def bound(self) -> str:
        """'memory' when the unit's DDR/HBM beats take longer than its issue cycles, else 'compute'."""
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"


@dataclass
class Estimate:
    board: str
    device: str
    clock_mhz: int
    task: str
    images: int
    units: List[UnitEstimate]
    total_cycles: int
    resources: List[Tuple[str, int, int]]  # (resource, used, available)
    moe_trace: Optional[object] = field(default=None, repr=False)
    top_k: int = 0

    @property
    def milliseconds(self) -> float:
        """Modelled latency per image: the backbone, and the task's head when it was modelled (end to end)."""
        return self.total_cycles / (self.clock_mhz * 1e3)

    @property
    def head_milliseconds(self) -> float:
        """Of `milliseconds`, the task head's stages (0 when the heads were left to the host)."""
        return sum(u.cycles for u in self.units if u.stage >= HEAD_STAGE) / (self.clock_mhz * 1e3)

    @property
    def backbone_milliseconds(self) -> float:
        return self.milliseconds - self.head_milliseconds

    def by_unit(self) -> List[Tuple[str, int, float]]:
        """(unit, cycles, share of the total) summed over stages, largest first."""
        sums = {}
        for u in self.units:
            sums[u.unit] = sums.get(u.unit, 0) + u.cycles
        total = max(self.total_cycles, 1)
        return sorted(((k, v, v / total) for k, v in sums.items()), key=lambda t: -t[1])

    def resource_utilisation(self) -> List[Tuple[str, int, int, Optional[float]]]:
        return [(name, used, avail, used / avail if avail else None) for name, used, avail in self.resources]

    def within_budget(self, budget: float = RESOURCE_BUDGET) -> bool:
        """Every resource the device has at most `budget` used (URAM counts only where the device has some)."""
        return all(frac is None or frac <= budget for _, used, _, frac in self.resource_utilisation()
                   if not (frac is None and used == 0))

    def table(self, per_stage: bool = True) -> str:
        what = "backbone and task head" if any(u.stage >= HEAD_STAGE for u in self.units) else "backbone"
        lines = [f"modelled latency of the M3ViT {what} on {self.board} ({self.device}, {self.clock_mhz} MHz), "
                 f"task {self.task!r}, top-{self.top_k}, per image (mean of {self.images})"]
        if per_stage:
            head = (f"{'stage':<14} {'unit':<18} {'cycles':>11} {'ms':>8} {'MAC util':>8} {'MB moved':>9}  "
                    f"{'transfers':<11} bound")
            lines.append(head)
            lines.append("-" * len(head))
            for u in self.units:
                util = f"{u.mac_utilisation * 100:7.1f}%" if u.mac_utilisation is not None else f"{'':>8}"
                lines.append(f"{stage_name(u.stage):<14} {u.unit:<18} {u.cycles:>11,} {u.milliseconds:8.3f} {util} "
                             f"{u.bytes / 1e6:9.3f}  {u.transfers:<11} {u.bound}")
            lines.append("-" * len(head))
        lines.append("by unit (all stages):")
        for unit, cycles, share in self.by_unit():
            lines.append(f"  {unit:<28} {cycles:>13,} cycles {cycles / (self.clock_mhz * 1e3):9.3f} ms "
                         f"{share * 100:5.1f} %")
        moved = sum(u.bytes for u in self.units)
        single = sum(u.single_beat_bytes for u in self.units)
        if self.head_milliseconds > 0:
            lines.append(f"backbone {self.backbone_milliseconds:.2f} ms + head {self.head_milliseconds:.2f} ms "
                         f"= {self.milliseconds:.2f} ms end to end")
        lines.append(f"total: {self.total_cycles:,} cycles = {self.milliseconds:.2f} ms per image; "
                     f"{single / max(moved, 1) * 100:.0f} % of {moved / 1e6:.1f} MB moved by single-beat loops "
                     "(charged a beat per read latency / outstanding requests)")
        lines.append(f"{'resource':<8} {'used':>9} {'available':>10} {'share':>7}")
        for name, used, avail, frac in self.resource_utilisation():
            share = f"{frac * 100:6.1f}%" if frac is not None else "     —"
            lines.append(f"{name:<8} {used:>9,} {avail:>10,} {share}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def from_native(raw: dict, task: str, moe_trace=None, top_k: int = 0) -> Estimate:
    clock = int(raw["clock_mhz"])
    units = [UnitEstimate(clock_mhz=clock, **r) for r in raw["rows"]]
    return Estimate(board=raw["board"], device=raw["device"], clock_mhz=clock, task=task, images=int(raw["images"]),
                    units=units, total_cycles=int(raw["total_cycles"]), resources=[tuple(r) for r in raw["resources"]],
                    moe_trace=moe_trace, top_k=top_k)
