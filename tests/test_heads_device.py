"""M3ViT's task heads on the accelerator (issue 22): emu runs backbone and head in one kernel call per
task (heads="device", the default); heads="host" keeps them on the CPU backend.

Accuracy contract against fp32 PyTorch (edgemoe.reference), per task output:
  NMSE = sum((emu - ref)^2) / sum(ref^2) <= HEAD_NMSE_BOUND, and
  semseg / human_parts argmax agreement >= ARGMAX_BOUND of pixels.
Why the bound (kernels/README.md, "Formats"): the head's error is set by its folded weights' 18-bit
format (LSB 2^-16: each weight off by 2^-16/sqrt(12) = 4.4e-6 rms). A convolution whose weights have
RMS w_rms adds a relative error of ~4.4e-6 / w_rms, so NMSE ~ sum over the five convolutions of
(4.4e-6 / w_rms)^2: the built-in model's conv_0 (w_rms 0.013, the smallest) gives 1.1e-7, the others
< 1e-8, the backbone's share ~5e-11 (tests/test_emu.py); the seeded 256-channel heads (w_rms ~0.03 in
all five) 5 x 2.2e-8 = 1.1e-7. 1e-6 is 5-10x those estimates (measured 2026-12-06: built-in 1.7e-9 ..
1.8e-8, seeded 256-channel 1.1e-7 .. 1.9e-7) and 10x below the 1e-5 issue 22 asks. The activations' truncations (2^-18, 2^-22) are 100x smaller
(tb/test_head.cpp: NMSE ~1e-11 against a double golden model on the same weights). Argmax: only
pixels whose top-2 logits lie within that error can change: measured >= 99.99 %, bound 99.5 %."""
import dataclasses
import warnings

import pytest
import torch

import edgemoe
from edgemoe import reference, synthetic
from edgemoe.imaging import sample_input

HEAD_NMSE_BOUND = 1e-6
ARGMAX_BOUND = 0.995
ARGMAX_TASKS = ("semseg", "human_parts")


def nmse(a, b):
    return (((a - b) ** 2).sum() / (b ** 2).sum()).item()


@pytest.fixture(scope="module")
def builtin():
    ref = reference.M3ViT.pretrained().eval()
    emu = edgemoe.Model.pretrained("emu")
    photo = sample_input(emu.config.image_size)  # [1, 3, H, W]
    images = torch.cat([photo, photo.flip(-1)])
    return ref, emu, images


def test_builtin_heads_on_the_device_meet_the_contract(builtin):
    ref, emu, images = builtin
    out = emu(images, tasks=emu.tasks)
    with torch.no_grad():
        for task in emu.tasks:
            r = ref(images, task)
            assert out[task].shape == r.shape
            assert nmse(out[task], r) <= HEAD_NMSE_BOUND, task
            if task in ARGMAX_TASKS:
                assert (out[task].argmax(1) == r.argmax(1)).float().mean().item() >= ARGMAX_BOUND, task


def test_heads_host_runs_the_cpu_head_on_the_emulated_backbone(builtin):
    ref, emu, images = builtin
    host = edgemoe.Model.pretrained("emu", heads="host")
    task = "semseg"
    expected = host(images, task=task)
    with torch.no_grad():
        assert nmse(expected, ref(images, task)) <= HEAD_NMSE_BOUND
    device = emu(images, task=task)
    assert not torch.equal(device, expected), "heads='host' and 'device' are different arithmetic"
    assert nmse(device, expected) <= HEAD_NMSE_BOUND


def test_seeded_256_channel_heads_meet_the_contract():
    """Edge-MoE's ViT-T with M3ViT's 256-channel heads (seeded), every task, on 8-bit images. Against the
    fp32 head on the same emulated backbone (heads="host"): a seeded ViT-T routes a few tokens near a
    gate tie differently on emu than in fp32 (tests/test_emu.py), which moves their neighbourhood of the
    output by far more than any head error; the head's own error is what is measured here."""
    cfg = synthetic.preset("cityscapes-vit-t")
    state = dict(synthetic.seeded_model(cfg, 3).state_dict())
    device = edgemoe.Model(cfg, state, "emu")
    host = edgemoe.Model(cfg, state, "emu", heads="host")
    x = synthetic.pixel_images(cfg, 1, 3)
    out, expected = device(x, tasks=device.tasks), host(x, tasks=host.tasks)
    for task in device.tasks:
        assert nmse(out[task], expected[task]) <= HEAD_NMSE_BOUND, task
        if task in ARGMAX_TASKS:
            assert (out[task].argmax(1) == expected[task].argmax(1)).float().mean().item() >= ARGMAX_BOUND


def test_trace_reads_the_head_stages_from_the_device(builtin):
    ref, emu, images = builtin
    task = "normals"
    got = emu.trace(images[:1], task)
    want = ref.trace(images[:1], task)
    names = ["head.norm", "head.stage0", "head.stage1", "head.stage2", "head.stage3", "head.logits", "output"]
    for name in names:
        assert got[name].shape == want[name].shape, name
        assert nmse(got[name], want[name]) <= HEAD_NMSE_BOUND, name
    # The device's own output: what the forward pass returns.
    assert torch.equal(got["output"], emu(images[:1], task=task))


def test_heads_option_is_checked():
    with pytest.raises(ValueError, match="heads must be 'device'"):
        edgemoe.Model.pretrained("emu", heads="gpu")
    with pytest.raises(TypeError, match="heads must be a str"):
        edgemoe.Model.pretrained("emu", heads=True)
    with pytest.raises(ValueError, match="only the accelerator's backends"):
        edgemoe.Model.pretrained("cpu", heads="host")
    model = edgemoe.Model.pretrained("cpu")
    model.to("emu", heads="host")
    assert model.backend == "emu"
    with pytest.raises(ValueError, match="only the accelerator's backends"):
        model.to("cpu", heads="device")


def test_heads_the_build_cannot_hold_are_refused_by_name():
    cfg = dataclasses.replace(synthetic.preset("tiny"), head_channels=24)  # not whole 16-channel words
    state = dict(synthetic.seeded_model(cfg, 1).state_dict())
    with pytest.raises(ValueError, match=r"task heads: its heads' 24 channels.*heads='host'"):
        edgemoe.Model(cfg, state, "emu")
    edgemoe.Model(cfg, state, "emu", heads="host")  # the backbone alone still runs on the device


def test_a_folded_weight_outside_the_format_is_refused_not_saturated():
    cfg = synthetic.preset("tiny")
    state = dict(synthetic.seeded_model(cfg, 1).state_dict())
    key = next(k for k in state if k.endswith("sal.syncbn_fc_2.running_var"))
    state[key] = state[key].clone()
    state[key][5] = 1e-9  # gamma / sqrt(var + eps) ~ 300: folded weights far beyond +-2
    with pytest.raises(ValueError, match=r"head of task 'sal': its conv_2 \(BatchNorm folded in\) has a weight"):
        edgemoe.Model(cfg, state, "emu")


def test_a_weight_whose_winograd_term_leaves_the_format_is_refused():
    """emu runs conv_1..3 as Winograd's F(2, 3): its weights 2 g0, g0 +- g1 + g2 and 2 g2 must fit the
    18-bit format (+-2) too, so a folded tap of 1.2 (inside +-2 itself) is refused by name."""
    cfg = synthetic.preset("tiny")
    assert edgemoe.info()["boards"]["emu"]["head_winograd"]
    state = dict(synthetic.seeded_model(cfg, 1).state_dict())
    prefix = next(k for k in state if k.endswith("sal.conv_1.weight"))[: -len("conv_1.weight")]
    gamma, var = state[prefix + "syncbn_fc_1.weight"], state[prefix + "syncbn_fc_1.running_var"]
    scale = (gamma[3] / torch.sqrt(var[3] + 1e-5)).item()
    state[prefix + "conv_1.weight"] = state[prefix + "conv_1.weight"].clone()
    state[prefix + "conv_1.weight"][3, 0, 1, 0] = 1.2 / scale  # folded: g0 = 1.2, so 2 g0 = 2.4
    with pytest.raises(ValueError, match=r"head of task 'sal': its conv_1 \(BatchNorm folded in\) has a Winograd weight"):
        edgemoe.Model(cfg, state, "emu")
    edgemoe.Model(cfg, state, "emu", heads="host")  # the host's heads take it


def test_estimate_models_backbone_head_and_end_to_end():
    model = edgemoe.Model.pretrained()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = model.estimate("zcu102")
        backbone = model.estimate("zcu102", heads=False)
    stages = {u.stage for u in est.units}
    from edgemoe.estimate import HEAD_STAGE, stage_name

    assert {stage_name(s) for s in stages if s >= HEAD_STAGE} == {
        "head.stage0", "head.stage1", "head.stage2", "head.stage3", "head.logits", "output"}
    assert est.head_milliseconds > 0 and backbone.head_milliseconds == 0
    assert est.backbone_milliseconds == pytest.approx(backbone.milliseconds, rel=1e-9)
    assert "head conv" in {u.unit for u in est.units}
    assert "backbone" in est.table() and "end to end" in est.table()


def test_cli_heads_option(capsys):
    from edgemoe.cli import main as cli

    assert cli(["evaluate", "--data", "synthetic:2", "--backend", "emu", "--heads", "host", "--task", "sal"]) == 0
    assert "emu on synthetic:2" in capsys.readouterr().out
    assert cli(["compare", "--backends", "reference", "emu", "--heads", "device", "--task", "depth"]) in (0, 3)
    assert "head.logits" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli(["evaluate", "--data", "synthetic:2", "--backend", "emu", "--heads", "gpu"])
    assert "invalid choice" in capsys.readouterr().err
    assert cli(["evaluate", "--data", "synthetic:2", "--backend", "reference", "--heads", "host"]) == 1
    assert "--heads: only the native backends take this option" in capsys.readouterr().err
