"""Layer-by-layer traces (Model.trace, reference.M3ViT.trace) and edgemoe.compare: the same names and
shapes on every backend; cpu and emu within compare's thresholds of PyTorch on the built-in trained
checkpoint; one corrupted layer in one backend is the first divergence compare names."""
import subprocess
import sys

import pytest
import torch

import edgemoe
from conftest import MAX_REL_ERR, max_rel_err
from edgemoe import synthetic
from edgemoe.checkpoint import load_state_dict
from edgemoe.config import derive_config
from edgemoe.data import SyntheticScenes, trained_checkpoint, trained_config
from edgemoe.reference import M3ViT
from edgemoe.trace import NMSE_THRESHOLD, Trace, compare


@pytest.fixture(scope="module")
def trained():
    state, _ = load_state_dict(trained_checkpoint())
    config = derive_config(state, yaml_config=str(trained_config()))
    reference = M3ViT(config)
    reference.load_state_dict(state)
    return config, dict(state), reference.eval()


@pytest.fixture(scope="module")
def scenes(trained):
    config = trained[0]
    data = SyntheticScenes("test", 2, config.image_size)
    return torch.stack([data[i]["image"] for i in range(2)])


@pytest.fixture(scope="module")
def reference_traces(trained, scenes):
    config, _, reference = trained
    return {task: reference.trace(scenes, task) for task in ("semseg", "depth")}


def expected_names(config):
    names = ["embed"]
    for b in range(config.depth):
        names.append(f"block{b}.attn")
        if b in config.moe_blocks:
            names += [f"block{b}.gate_probs", f"block{b}.experts", f"block{b}.tokens_per_expert"]
        names += [f"block{b}.mlp", f"block{b}.out"]
    return names + ["head.norm"] + [f"head.stage{i}" for i in range(4)] + ["head.logits", "output"]


def test_reference_trace_names_shapes_and_output(trained, scenes, reference_traces):
    config, _, reference = trained
    trace = reference_traces["semseg"]
    assert list(trace) == expected_names(config)
    B, N, D, E, k = 2, config.num_tokens, config.embed_dim, config.num_experts, config.top_k
    gh, gw = config.grid
    assert trace["embed"].shape == (B, N, D)
    assert trace["block1.gate_probs"].shape == (B, N, E)
    assert trace["block1.experts"].shape == (B, N, k) and trace["block1.experts"].dtype == torch.int64
    assert trace["block1.tokens_per_expert"].shape == (B, E)
    assert trace["head.norm"].shape == (B, D, gh, gw)
    assert trace["head.stage0"].shape == (B, config.head_channels, 2 * gh, 2 * gw)
    assert trace["head.stage3"].shape == (B, config.head_channels, 8 * gh, 8 * gw)
    assert trace["output"].shape == (B, 5, *config.image_size)
    # The trace is the forward pass: its last block and output are what forward returns.
    with torch.no_grad():
        assert torch.equal(trace[f"block{config.depth - 1}.out"], reference.features(scenes, "semseg"))
        assert torch.equal(trace["output"], reference(scenes, "semseg"))
    assert torch.equal(trace["block1.tokens_per_expert"].sum(1), torch.full((B,), N * k))


@pytest.mark.parametrize("backend", ["cpu", "emu"])
def test_backend_traces_match_reference_names_shapes_and_thresholds(backend, trained, scenes, reference_traces):
    config, state, _ = trained
    model = edgemoe.Model(config, state, backend)
    for task, ref in reference_traces.items():
        trace = model.trace(scenes, task)
        assert isinstance(trace, Trace) and trace.source == backend and trace.task == task
        assert list(trace) == list(ref)
        for name in ref:
            assert trace[name].shape == ref[name].shape, name
            assert trace[name].dtype == ref[name].dtype, name
        # The trace's output is the backend's own forward output (image by image: the fp32 GEMMs
        # block a batch of one differently, so equal to fp32 rounding, conftest.MAX_REL_ERR).
        assert max_rel_err(trace["output"], model(scenes, task=task)) <= MAX_REL_ERR
        result = compare(ref, trace)
        assert result.first_divergence is None, str(result)
        worst = max(layer.nmse for layer in result.layers if layer.nmse is not None)
        if backend == "cpu":  # fp32 against fp32: rounding only
            assert worst < 1e-9, str(result)
        else:  # the fixed-point datapath: well inside the threshold, not exact
            assert 1e-12 < worst < NMSE_THRESHOLD / 10, str(result)
        for b in config.moe_blocks:
            layer = result[f"block{b}.experts"]
            assert layer.disagreements == layer.near_ties, str(result)
            # counts are each trace's own routing
            counts = torch.stack([torch.bincount(e.flatten(), minlength=config.num_experts)
                                  for e in trace[f"block{b}.experts"]])
            assert torch.equal(counts, trace[f"block{b}.tokens_per_expert"])


def _corrupted(state, key, seed=0):
    bad = dict(state)
    g = torch.Generator().manual_seed(seed)
    w = state[key]
    bad[key] = w + 0.5 * w.std() * torch.randn(w.shape, generator=g)
    return bad


@pytest.mark.parametrize("backend, key, first", [
    ("cpu", "backbone.blocks.2.attn.proj.weight", "block2.attn"),
    ("emu", "backbone.blocks.3.mlp.experts.h4toh.weight", "block3.mlp"),
    ("emu", "backbone.blocks.4.mlp.fc1.weight", "block4.mlp"),
    ("cpu", "decoders.semseg.conv_1.weight", "head.stage1"),
    ("emu", "backbone.blocks.5.mlp.gate.0.w_gate", "block5.gate_probs"),
])
def test_first_divergence_is_the_corrupted_layer(backend, key, first, trained, scenes, reference_traces):
    config, state, _ = trained
    model = edgemoe.Model(config, _corrupted(state, key), backend)
    result = compare(reference_traces["semseg"], model.trace(scenes, "semseg"))
    assert result.first_divergence is not None and result.first_divergence.name == first, str(result)
    assert f"first layer over its threshold: {first}" in str(result)


def test_tokens_per_expert_must_agree_with_the_traces_own_routing(reference_traces):
    a = reference_traces["semseg"]
    b = Trace({k: v.clone() for k, v in a.items()}, "device", a.task)
    counts = b["block3.tokens_per_expert"]
    counts[0, 0] += 1
    counts[0, 1] -= 1  # the same total, but not what its routing says
    result = compare(a, b)
    assert result.first_divergence.name == "block3.tokens_per_expert"
    assert "counts disagree with its own routing" in result["block3.tokens_per_expert"].note


def test_routing_difference_without_a_near_tie_is_over(reference_traces):
    a = reference_traces["depth"]
    b = Trace({k: v.clone() for k, v in a.items()}, "device", a.task)
    experts = b["block1.experts"]
    experts[0, 5] = (experts[0, 5] + 1) % a["block1.gate_probs"].shape[-1]  # same probabilities, other choice
    result = compare(a, b)
    layer = result["block1.experts"]
    assert layer.disagreements == 1 and layer.near_ties == 0 and layer.over


def test_compare_refuses_mismatched_traces(reference_traces):
    a, b = reference_traces["semseg"], reference_traces["depth"]
    with pytest.raises(ValueError, match="different tasks"):
        compare(a, b)
    short = Trace({k: v for k, v in a.items() if k != "embed"}, "x", a.task)
    with pytest.raises(ValueError, match="different layers"):
        compare(a, short)
    with pytest.raises(TypeError):
        compare(dict(a), a)


def test_trace_validates_its_arguments(trained):
    config, state, _ = trained
    model = edgemoe.Model(config, state, "cpu")
    with pytest.raises(ValueError, match="unknown task"):
        model.trace(torch.zeros(1, 3, *config.image_size), "nope")
    with pytest.raises(ValueError, match="images must have shape"):
        model.trace(torch.zeros(1, 3, 16, 16), "semseg")


def test_trace_of_task_conditioned_gate_matches_reference():
    cfg = synthetic.preset("tiny")
    import dataclasses

    cfg = dataclasses.replace(cfg, gate="task_conditioned", gate_task_dim=8)
    torch_model = synthetic.seeded_model(cfg, seed=2)
    model = edgemoe.Model(cfg, dict(torch_model.state_dict()), "cpu")
    images = synthetic.pixel_images(cfg, 1, 0)
    result = compare(torch_model.trace(images, cfg.task_names[0]), model.trace(images, cfg.task_names[0]))
    assert result.first_divergence is None, str(result)


def test_cli_compare_on_the_demo_checkpoint():
    out = subprocess.run([sys.executable, "-m", "edgemoe", "compare", "--backends", "reference", "emu",
                          "--task", "human_parts"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "emu vs PyTorch, task human_parts" in out.stdout
    assert "every layer within its threshold" in out.stdout
    assert "block5.experts" in out.stdout


def test_exact_gate_ties_go_to_the_lowest_expert_on_the_native_backends():
    """With every router at zero all experts tie exactly. The native backends' rule is the lowest index
    first (csrc/core/task_gate.h pick_experts, the kernel's gate): cpu and emu must agree with it and with
    each other. torch.topk (M3ViT's gate, the reference) leaves exact ties unspecified (here it picks the
    highest-numbered pair), which is why compare() explains routing differences at near ties; with every
    token flipped, as here, the layers after them differ by whole experts' outputs."""
    from edgemoe import synthetic

    cfg = synthetic.preset("tiny")
    state = dict(synthetic.seeded_model(cfg, seed=2).state_dict())
    for key in state:
        if key.endswith("w_gate"):
            state[key] = torch.zeros_like(state[key])
    reference = edgemoe.reference.M3ViT(cfg)
    reference.load_state_dict(state)
    x = synthetic.pixel_images(cfg, 1, seed=4)
    expected = torch.arange(cfg.top_k).expand(cfg.num_tokens, cfg.top_k)
    reference_trace = reference.eval().trace(x, "semseg")
    for backend in ("cpu", "emu"):
        trace = edgemoe.Model(cfg, state, backend).trace(x, "semseg")
        for block in cfg.moe_blocks:
            chosen = trace[f"block{block}.experts"].reshape(-1, cfg.top_k)
            assert torch.equal(chosen, expected), (backend, block)
    for block in cfg.moe_blocks:  # PyTorch's choice is still k distinct experts, each as good as any
        chosen = reference_trace[f"block{block}.experts"].reshape(-1, cfg.top_k)
        assert all(len(set(row.tolist())) == cfg.top_k for row in chosen)
