"""Layer-by-layer traces of one task's forward pass, and the comparison of two of them.

``edgemoe.Model.trace(images, task)`` (cpu, emu, fpga) and ``edgemoe.reference.M3ViT.trace``
(PyTorch) return a :class:`Trace`: the intermediates below, in forward order, with the same names
and shapes on every backend (csrc/core/trace.h defines them once for the native backends):

==============================  =====================  ==========================================
name                            shape                  what
==============================  =====================  ==========================================
``embed``                       [B, N, D]              patch embedding + cls token + positions
``block{b}.attn``               [B, N, D]              the attention branch: proj(attention(norm1(x)))
``block{b}.gate_probs``         [B, N, E]              MoE blocks: softmax over all experts
``block{b}.experts``            [B, N, k] int64        chosen experts, best first
``block{b}.tokens_per_expert``  [B, E] int64           tokens routed to each expert
``block{b}.mlp``                [B, N, D]              the MLP / MoE branch: what the block adds next
``block{b}.out``                [B, N, D]              the residual stream after the block
``head.norm``                   [B, D, gh, gw]         the head's LayerNorm (cls dropped)
``head.stage{i}``               [B, C, ., .]           conv_i + BN + ReLU (upsampled x2 for i < 3)
``head.logits``                 [B, out, 8gh, 8gw]     conv_4
``output``                      [B, out, H, W]         the task output
==============================  =====================  ==========================================

The branches (``attn``, ``mlp``) are what each layer adds to the residual stream: a wrong weight
shows in its own branch at full size, while the stream, dominated by everything before it, hides
it. On emu and fpga, ``x`` is read back after every half-block through the kernel's stage range; the
gate probabilities and choices are the kernel's own gate arithmetic (kernels/src/moe.h
``gate_token``, the function the hardware's ``route_tokens`` uses) replayed on the host over the
normalised tokens the device wrote, and ``tokens_per_expert`` is the device's own count, so a
device whose gate went wrong shows up as counts that disagree with its routing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

# Thresholds (see compare's docstring for why these values).
NMSE_THRESHOLD = 1e-4
NEAR_TIE_FACTOR = 2.0


class Trace(dict):
    """Named intermediates in forward order (a dict: name -> tensor) and where they came from."""

    def __init__(self, entries, source: str, task: str):
        super().__init__(entries)
        self.source = source
        self.task = task

    def __repr__(self) -> str:
        return f"Trace(source={self.source!r}, task={self.task!r}, {len(self)} entries: {', '.join(list(self)[:4])}, ...)"


@dataclass
class LayerComparison:
    name: str
    shape: tuple
    nmse: Optional[float] = None          # float entries: ||b - a||^2 / ||a||^2
    max_abs: Optional[float] = None       # float entries: max |b - a|
    agreement: Optional[float] = None     # argmax (output) or routing (experts) agreement, 0..1
    disagreements: Optional[int] = None   # experts: tokens routed differently
    near_ties: Optional[int] = None       # experts: of those, the ones a near tie explains
    count_error: Optional[int] = None     # tokens_per_expert: sum |count_b - count_a|
    threshold: str = ""
    over: bool = False
    note: str = ""


@dataclass
class Comparison:
    """The per-layer table of :func:`compare`; ``first_divergence`` names the first layer over its
    threshold (None when every layer is within). ``print(comparison)`` shows the table."""
    source_a: str
    source_b: str
    task: str
    layers: List[LayerComparison] = field(default_factory=list)

    @property
    def first_divergence(self) -> Optional[LayerComparison]:
        return next((layer for layer in self.layers if layer.over), None)

    def __getitem__(self, name: str) -> LayerComparison:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def table(self) -> str:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        width = max([len("layer")] + [len(layer.name) for layer in self.layers])
        lines = [f"{self.source_b} vs {self.source_a}, task {self.task}",
                 f"{'layer':<{width}}  {'shape':<20} {'NMSE':>9} {'max abs':>9} {'agree':>8}  note"]
        for layer in self.layers:
            shape = "x".join(str(s) for s in layer.shape)
            agree = "-" if layer.agreement is None else f"{100 * layer.agreement:.2f}%"
            mark = "  <-- over " + layer.threshold if layer.over else ""
            lines.append(f"{layer.name:<{width}}  {shape:<20} {num(layer.nmse, '9.2e')} {num(layer.max_abs, '9.2e')} "
                         f"{agree:>8}  {layer.note}{mark}")
        first = self.first_divergence
        lines.append(f"first layer over its threshold: {first.name} ({first.threshold})" if first
                     else "every layer within its threshold")
        return "\n".join(lines)

    __str__ = table

    def plot(self, ax=None, threshold: bool = True):
        """NMSE per float layer (log scale), with the threshold line unless ``threshold=False`` (for a
        second comparison on the same axes); returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 3.5))
        rows = [layer for layer in self.layers if layer.nmse is not None]
        floor = 1e-30  # an exact match still gets a point
        ax.semilogy(range(len(rows)), [max(r.nmse, floor) for r in rows], "o-", label=f"{self.source_b} vs {self.source_a}")
        if threshold:
            ax.axhline(NMSE_THRESHOLD, color="red", linestyle="--", linewidth=1, label=f"threshold {NMSE_THRESHOLD:g}")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.name for r in rows], rotation=70, fontsize=7)
        ax.set_ylabel("NMSE")
        ax.set_title(f"per-layer error, task {self.task}")
        ax.legend(fontsize=8)
        return ax


def _float_stats(a: torch.Tensor, b: torch.Tensor, keep: Optional[torch.Tensor] = None):
    """NMSE and max abs error; keep: [B, N] tokens to compare (MoE branches), None for all."""
    if keep is not None:
        a, b = a[keep], b[keep]
    a64, b64 = a.double(), b.double()
    err = (b64 - a64).pow(2).sum().item()
    energy = a64.pow(2).sum().item()
    nmse = err / energy if energy > 0 else (0.0 if err == 0 else math.inf)
    max_abs = (b64 - a64).abs().max().item() if a.numel() else 0.0
    return nmse, max_abs


def _routing(layer: LayerComparison, a: Trace, b: Trace, name: str) -> torch.Tensor:
    """experts entry: tokens whose chosen set differs, and how many a near tie explains. Returns
    the [B, N] mask of tokens both route alike."""
    prefix = name[: -len(".experts")]
    ea, eb = a[name], b[name]
    set_a, set_b = ea.sort(dim=-1).values, eb.sort(dim=-1).values
    differs = (set_a != set_b).any(dim=-1)
    tokens = differs.numel()
    n_diff = int(differs.sum())
    layer.agreement = 1 - n_diff / tokens if tokens else 1.0
    layer.disagreements = n_diff
    pa, pb = a[prefix + ".gate_probs"].double(), b[prefix + ".gate_probs"].double()
    k = ea.shape[-1]
    if k < pa.shape[-1]:
        top = pa.topk(k + 1, dim=-1).values
        margin = top[..., k - 1] - top[..., k]
    else:
        margin = torch.full(pa.shape[:-1], math.inf, dtype=torch.float64)
    error = (pb - pa).abs().max(dim=-1).values
    explained = differs & (margin <= NEAR_TIE_FACTOR * error)
    layer.near_ties = int(explained.sum())
    unexplained = n_diff - layer.near_ties
    layer.threshold = "a routing difference no near tie explains"
    layer.over = unexplained > 0
    layer.note = f"{n_diff} of {tokens} tokens routed differently, {layer.near_ties} near ties"
    return ~differs


def _counts(layer: LayerComparison, a: Trace, b: Trace, name: str, k: int, disagreements: Optional[int]):
    ca, cb = a[name], b[name]
    layer.count_error = int((cb - ca).abs().sum())
    total = int(ca.sum())
    layer.agreement = 1 - layer.count_error / (2 * total) if total else 1.0
    notes = [f"{layer.count_error} token slots moved"]
    experts = name[: -len(".tokens_per_expert")] + ".experts"
    own = [src for src, t in ((a.source, a), (b.source, b))
           if experts in t and not torch.equal(_bincount(t[experts], t[name].shape[-1]), t[name])]
    allowed = 2 * k * (disagreements or 0)
    if own:
        layer.over = True
        layer.threshold = "counts that disagree with the same trace's routing"
        notes.append(f"{', '.join(own)}: counts disagree with its own routing")
    elif layer.count_error > allowed:
        layer.over = True
        layer.threshold = f"more than 2k x {disagreements or 0} differently routed tokens = {allowed} slots"
    layer.note = "; ".join(notes)


def _bincount(experts: torch.Tensor, num_experts: int) -> torch.Tensor:
    flat = experts.reshape(experts.shape[0], -1)
    return torch.stack([torch.bincount(row, minlength=num_experts) for row in flat]).to(torch.int64)


def compare(trace_a: Trace, trace_b: Trace, nmse_threshold: float = NMSE_THRESHOLD) -> Comparison:
    """Compare ``trace_b`` (the one under test, e.g. emu) with ``trace_a`` (the baseline, e.g.
    PyTorch) layer by layer; returns a :class:`Comparison` (print it for the table).

    Per layer: NMSE = ||b - a||^2 / ||a||^2 and the max abs error for every float tensor; argmax
    agreement over the channels for ``head.logits`` and ``output`` of tasks with more than one
    channel; for MoE layers the routing agreement (tokens whose set of chosen experts is equal),
    the near ties among the differences, and the token counts.

    Thresholds, and why:

    * NMSE <= 1e-4 (40 dB) for float tensors. Measured on the built-in trained checkpoint (8 test
      scenes, every task): fp32 ``cpu`` is at ~1e-10 of PyTorch and the emu / FPGA datapath (18-bit
      weights, 2^-22 activations, table GELU and exp) at <= 4e-9 on every layer, <= 4e-7 downstream
      of a near-tie routing flip; a 50 % perturbation of one weight matrix puts its branch at 6e-4
      in the mildest case we found (an MLP whose output is mostly its bias) and usually far above.
      1e-4 sits between, 250x above the healthy datapath and 6x below that mildest fault.
    * An MoE block's branch and output (``block{b}.mlp``, ``block{b}.out``) are compared over the
      tokens both traces route alike: a token sent to another expert at a near tie (below) changes
      by a whole expert's output, a routing effect, not a numeric one; the note says how many
      tokens were left out. Later layers see such a flip through attention, spread over all tokens
      (4e-7 on the trained checkpoint); a model whose inputs have many near ties may need a looser
      ``nmse_threshold``.
    * Routing: a token may legitimately go to another expert when its k-th and (k+1)-th gate
      probabilities are closer than the two traces' probability error can move them: a flip needs
      two probabilities to cross, so it is explained when the baseline's margin <= 2 x the token's
      largest probability error (``NEAR_TIE_FACTOR``). Any other routing difference is over.
    * ``tokens_per_expert``: over when a trace's counts disagree with its own ``experts`` (the
      device's counter against the replayed gate), or when the counts differ by more than the
      routing differences can move (2k slots per differently routed token).

    ``first_divergence`` is the first layer, in forward order, over its threshold: with one bad
    layer everything after it diverges too, so that is where to look.
    """
    if not isinstance(trace_a, Trace) or not isinstance(trace_b, Trace):
        raise TypeError("compare takes two edgemoe traces (Model.trace / reference.M3ViT.trace)")
    names_a, names_b = list(trace_a), list(trace_b)
    if not names_a or not names_b:
        raise ValueError("nothing to compare: a trace is empty (Model.trace and reference.M3ViT.trace make them)")
    if names_a != names_b:
        missing = [n for n in trace_a if n not in trace_b] + [n for n in trace_b if n not in trace_a]
        if not missing:
            at = next(i for i, (x, y) in enumerate(zip(names_a, names_b)) if x != y)
            raise ValueError(f"the traces hold the same layers in another order ({names_a[at]!r} against {names_b[at]!r} "
                             f"at position {at}); traces are compared in forward order, as Model.trace makes them")
        raise ValueError(f"the traces have different layers (model configurations differ?): {missing[:5]}")
    if trace_a.task != trace_b.task:
        raise ValueError(f"the traces are of different tasks: {trace_a.task!r} and {trace_b.task!r}")
    result = Comparison(trace_a.source, trace_b.source, trace_a.task)
    disagreements: Dict[str, int] = {}
    routed_alike: Dict[str, torch.Tensor] = {}
    for name, a in trace_a.items():
        b = trace_b[name]
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"{name}: shapes differ, {tuple(a.shape)} and {tuple(b.shape)} (different images?)")
        layer = LayerComparison(name, tuple(a.shape))
        if name.endswith(".experts"):
            prefix = name[: -len(".experts")]
            routed_alike[prefix] = _routing(layer, trace_a, trace_b, name)
            disagreements[prefix] = layer.disagreements
        elif name.endswith(".tokens_per_expert"):
            prefix = name[: -len(".tokens_per_expert")]
            k = trace_a[prefix + ".experts"].shape[-1]
            _counts(layer, trace_a, trace_b, name, k, disagreements.get(prefix))
        else:
            keep = routed_alike.get(name.rsplit(".", 1)[0]) if name.endswith((".mlp", ".out")) else None
            layer.nmse, layer.max_abs = _float_stats(a, b, keep)
            if keep is not None and not bool(keep.all()):
                layer.note = f"over the tokens routed alike ({int((~keep).sum())} left out)"
            if name in ("head.logits", "output") and a.shape[1] > 1:
                layer.agreement = (a.argmax(dim=1) == b.argmax(dim=1)).double().mean().item()
                layer.note = "argmax agreement"
            layer.threshold = f"NMSE {layer.nmse:.2e} > {nmse_threshold:g}"
            layer.over = not (layer.nmse <= nmse_threshold)  # NaN is over
        result.layers.append(layer)
    return result
