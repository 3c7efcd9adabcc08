"""backend="fpga" from Python without a card: XRT's noop shim (shared/spec/xrt.md §6) with the
metadata-only xclbin edgemoe writes. noop executes nothing, so these tests check the API, the
plumbing and every error path, never numbers (tests/cpp/test_fpga_noop.cpp compares the host's
device traffic with emu's byte for byte). Tests marked `board` need a real device and an xclbin
(EDGEMOE_TEST_XCLBIN) and are skipped otherwise."""
import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import edgemoe
from edgemoe import _C, synthetic
from xrt_noop import XRT_LIBDIR, noop_root as _noop_root

TINY = synthetic.preset("tiny")
pytestmark = pytest.mark.skipif(XRT_LIBDIR is None, reason="this build has no XRT (the Makefile's build has)")


@pytest.fixture(scope="module")
def tiny_state():
    return dict(synthetic.seeded_model(TINY, 0).state_dict())


def _images(cfg, batch, seed):
    return synthetic.pixel_images(cfg, batch, seed)


def test_fpga_runs_the_same_calls_as_emu(noop, tiny_state):
    fpga = edgemoe.Model(TINY, tiny_state, "fpga", xclbin=noop)
    emu = edgemoe.Model(TINY, tiny_state, "emu")
    assert fpga.backend == "fpga"
    x = _images(TINY, 3, 0)
    out, ref = fpga(x, tasks=fpga.tasks), emu(x, tasks=emu.tasks)
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in ref.items()}
    for task in fpga.tasks:
        assert fpga.moe_trace(task).shape == emu.moe_trace(task).shape == (3, len(TINY.moe_blocks), 3, TINY.num_experts)
    assert fpga.features(x[:1], "sal").shape == (1, TINY.num_tokens, TINY.embed_dim)


def test_from_checkpoint_env_default_and_to(noop, tiny_checkpoint, monkeypatch):
    model = edgemoe.Model.from_checkpoint(tiny_checkpoint, backend="fpga", xclbin=noop, device=0, timeout=30,
                                          num_heads=2, top_k=2, image_size=(64, 96))
    assert model.backend == "fpga"
    monkeypatch.setenv("EDGEMOE_XCLBIN", noop)
    assert model.to("cpu").to("fpga").backend == "fpga"  # EDGEMOE_XCLBIN is the default path
    with pytest.raises(ValueError, match="xclbin: no such file"):
        model.to("fpga", xclbin=noop + ".missing")
    assert model.backend == "fpga"  # a failed move keeps the model where it was
    assert model(_images(model.config, 1, 1), task="normals").shape == (1, 3, 64, 96)


def test_edge_moe_vit_t_on_fpga(noop):
    cfg = synthetic.preset("cityscapes-vit-t")
    model = edgemoe.Model(cfg, dict(synthetic.seeded_model(cfg, 0).state_dict()), "fpga", xclbin=noop)
    out = model(_images(cfg, 1, 2), tasks=["semseg", "depth"])
    assert out["semseg"].shape == (1, 7, 128, 256) and out["depth"].shape == (1, 1, 128, 256)
    assert model.moe_trace("depth").shape == (1, 6, 3, 16)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(xclbin=None), ValueError, "needs xclbin="),
    (dict(xclbin=b"/x.xclbin"), TypeError, "xclbin must be a str"),
    (dict(xclbin=3), TypeError, "xclbin must be a str"),
    (dict(device=-1), ValueError, "device must be >= 0"),
    (dict(device="0"), TypeError, "device must be an int"),
    (dict(device=True), TypeError, "device must be an int"),
    (dict(timeout=0), ValueError, "timeout must be in"),
    (dict(timeout=float("nan")), ValueError, "timeout must be in"),
    (dict(timeout="1"), TypeError, "timeout must be a number"),
    (dict(timeout=10 ** 400), ValueError, "timeout must be in"),
    (dict(device=2 ** 31), ValueError, "device must be an XRT device index"),
])
def test_bad_options(noop, tiny_state, kwargs, error, match):
    kwargs = {"xclbin": noop, **kwargs}
    with pytest.raises(error, match=match):
        edgemoe.Model(TINY, tiny_state, "fpga", **kwargs)


def test_device_options_only_for_fpga(noop, tiny_state):
    with pytest.raises(ValueError, match="only backend='fpga' takes these options"):
        edgemoe.Model(TINY, tiny_state, "emu", xclbin=noop, timeout=3)
    with pytest.raises(ValueError, match="device: only backend='fpga'"):
        edgemoe.Model(TINY, tiny_state, "cpu", device=0)


def _corrupt(data: bytes, how: str) -> bytes:
    b = bytearray(data)
    if how == "truncated":
        return bytes(b[:-64])
    if how == "garbage":
        return os.urandom(4096)
    if how == "empty":
        return b""
    if how == "sections":  # axlf.m_header.m_numSections (offset 448) = 2^31
        b[448:452] = (1 << 31).to_bytes(4, "little")
        return bytes(b)
    raise AssertionError(how)


@pytest.mark.parametrize("how, match", [
    ("truncated", "truncated or padded"),
    ("garbage", "not an xclbin"),
    ("empty", "not an xclbin"),
    ("sections", "section count"),
])
def test_hostile_xclbin(noop, tiny_state, tmp_path, how, match):
    path = tmp_path / f"{how}.xclbin"
    path.write_bytes(_corrupt(open(noop, "rb").read(), how))
    with pytest.raises(ValueError, match=match):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(path))


def _interface():
    return [("images", True), ("weights", True), ("weights_odd", True), ("params", True), ("x", True), ("xn", True), ("qkv", True),
            ("hidden", True), ("outputs", True), ("trace", True)] + [
        (n, False) for n in ("num_images", "dim", "heads", "grid_h", "grid_w", "patch", "depth", "mlp_hidden",
                             "experts", "expert_hidden", "top_k", "num_tasks", "moe_mask", "task", "attn_scale",
                             "embed", "first_stage", "last_stage", "head_channels", "head_out", "head_stages")]


def test_interface_list_matches_the_kernel(noop):
    """The xclbin writer describes the kernel from kernels/src/kernel_interface.h; so does this list."""
    assert _C.metadata_xclbin() == _C.metadata_xclbin(args=_interface())


@pytest.mark.parametrize("change, match", [
    (lambda a: a[:-1], "has 30 arguments, this build passes 31"),
    (lambda a: a[:4] + [("y", True)] + a[5:], "argument 4 is 'y', expected 'x'"),
    (lambda a: a[:3] + [a[4], a[3]] + a[5:], "argument 3 is 'x', expected 'params'"),
    (lambda a: a[:10] + [("num_images", True)] + a[11:], "'num_images' is a pointer"),
    (lambda a: a[:9] + [("trace", False)] + a[10:], "'trace' is a scalar"),
    (lambda a: a[:8] + [("maps", True)] + a[9:], "argument 8 is 'maps', expected 'outputs'"),
])
def test_drifted_interface(noop, tiny_state, tmp_path, change, match):
    args = change(_interface())
    path = tmp_path / "drifted.xclbin"
    path.write_bytes(_C.metadata_xclbin(args=args, buffer_banks=[0] * sum(b for _, b in args)))
    with pytest.raises(ValueError, match=match):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(path))


def test_other_kernel(noop, tiny_state, tmp_path):
    path = tmp_path / "vadd.xclbin"
    path.write_bytes(_C.metadata_xclbin(kernel="vadd"))
    with pytest.raises(ValueError, match=r"has no kernel m3vit_backbone \(it has: vadd\)"):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(path))


def test_xclbin_errors_are_not_checkpoint_errors(noop, tiny_checkpoint, tmp_path):
    path = tmp_path / "vadd.xclbin"
    path.write_bytes(_C.metadata_xclbin(kernel="vadd"))
    with pytest.raises(ValueError, match="has no kernel m3vit_backbone") as info:
        edgemoe.Model.from_checkpoint(tiny_checkpoint, backend="fpga", xclbin=str(path), num_heads=2, top_k=2,
                                      image_size=(64, 96))
    assert not isinstance(info.value, edgemoe.CheckpointError)


def test_model_beyond_the_build_names_the_limit(noop):
    big = dataclasses.replace(TINY, image_size=(16 * 40, 16 * 40))
    with pytest.raises(ValueError, match="EDGEMOE_MAX_TOKENS = 1201 .*XRT device 0"):
        edgemoe.Model(big, dict(synthetic.seeded_model(big, 0).state_dict()), "fpga", xclbin=noop)


def test_info_probes_only_when_asked(noop):
    plain = subprocess.run([sys.executable, "-m", "edgemoe", "info"], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert "fpga: available (XRT runtime: XILINX_XRT=" in plain.stdout and "noop shim" in plain.stdout
    assert "devices:" not in plain.stdout
    probed = subprocess.run([sys.executable, "-m", "edgemoe", "info", "--devices"], capture_output=True, text=True,
                            timeout=300)
    assert probed.returncode == 0, probed.stderr
    assert "devices:\n  fpga: none found" in probed.stdout  # noop enumerates no device, yet opens device 0


# --- the runtime environment: each case in a fresh interpreter (XRT loads its shim once per process),
# which must raise a Python exception and then keep working.
_CHILD = textwrap.dedent("""
    import sys, torch, edgemoe
    from edgemoe import synthetic
    cfg = synthetic.preset("tiny")
    state = dict(synthetic.seeded_model(cfg, 0).state_dict())
    for attempt in range(2):  # the same failure twice: nothing is left half-initialised
        try:
            edgemoe.Model(cfg, state, "fpga", xclbin=sys.argv[1])
            print("NO ERROR")
        except Exception as exc:
            print(type(exc).__name__ + ": " + str(exc))
    print(edgemoe.info()["backends"]["fpga"]["reason"])
    model = edgemoe.Model(cfg, state, "cpu")
    print("alive", tuple(model(torch.zeros(1, 3, 64, 96), task="sal").shape))
""")


def _child(xclbin, env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("XILINX_XRT", "XCL_EMULATION_MODE")}
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", _CHILD, xclbin], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "alive (1, 1, 64, 96)" in done.stdout, done.stdout
    return done.stdout


@pytest.mark.parametrize("case, match", [
    ("unset", "RuntimeError: the XRT runtime was not found: XILINX_XRT is not set; source /opt/xilinx/xrt/setup.sh"),
    ("nonexistent", "RuntimeError: the XRT runtime under XILINX_XRT=/nonexistent is unusable: No such library"),
    ("no card", "RuntimeError: no FPGA device at index 0 (XRT finds 0 devices"),
    ("sw_emu", "RuntimeError: XCL_EMULATION_MODE=sw_emu is refused: XRT 2.13 ends the whole process"),
    ("hw_emu", "RuntimeError: XCL_EMULATION_MODE=hw_emu is refused"),
    ("bogus", "RuntimeError: XCL_EMULATION_MODE='bogus' is not a mode edgemoe can run"),
])
def test_runtime_environment_errors(noop, tmp_path, case, match):
    env = {
        "unset": {"XCL_EMULATION_MODE": "noop"},
        "nonexistent": {"XILINX_XRT": "/nonexistent", "XCL_EMULATION_MODE": "noop"},
        "no card": {"XILINX_XRT": _noop_root(tmp_path / "root")},
        "sw_emu": {"XILINX_XRT": _noop_root(tmp_path / "root"), "XCL_EMULATION_MODE": "sw_emu"},
        "hw_emu": {"XILINX_XRT": _noop_root(tmp_path / "root"), "XCL_EMULATION_MODE": "hw_emu"},
        "bogus": {"XCL_EMULATION_MODE": "bogus"},
    }[case]
    out = _child(noop, env)
    assert out.count(match) == 2, out


# --- a real board ---------------------------------------------------------------------------------
BOARD_XCLBIN = os.environ.get("EDGEMOE_TEST_XCLBIN")


@pytest.mark.board
@pytest.mark.skipif(not BOARD_XCLBIN or os.environ.get("XCL_EMULATION_MODE"),
                    reason="needs an FPGA: set EDGEMOE_TEST_XCLBIN to an xclbin built by kernels/vitis for the "
                           "board in this machine (and XILINX_XRT), without XCL_EMULATION_MODE")
def test_board_matches_emu_bit_for_bit():
    """The synthesised kernels compute exactly what emu computes (kernels/README.md, "Emulation")."""
    cfg = synthetic.preset("cityscapes-vit-t")
    state = dict(synthetic.seeded_model(cfg, 0).state_dict())
    fpga = edgemoe.Model(cfg, state, "fpga", xclbin=BOARD_XCLBIN)
    emu = edgemoe.Model(cfg, state, "emu")
    x = _images(cfg, 2, 3)
    for task in ("semseg", "depth"):
        assert torch.equal(fpga.features(x, task), emu.features(x, task))
        assert (fpga.moe_trace(task) == emu.moe_trace(task)).all()


def test_cli_dry_run(noop, tiny_checkpoint, tmp_path):
    """python -m edgemoe noop-xclbin, then run --backend fpga with it (XRT's noop shim from the fixture)."""
    import numpy as np
    from PIL import Image

    xclbin = tmp_path / "dry.xclbin"
    made = subprocess.run([sys.executable, "-m", "edgemoe", "noop-xclbin", str(xclbin)], capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert xclbin.read_bytes() == open(noop, "rb").read()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(photo)
    done = subprocess.run([sys.executable, "-m", "edgemoe", "run", "--checkpoint", str(tiny_checkpoint), "--image",
                           str(photo), "--backend", "fpga", "--xclbin", str(xclbin), "--timeout", "60",
                           "--num-heads", "2", "--top-k", "2", "--image-size", "64", "96", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]
    assert "dry run" in done.stdout and "outputs are not computed" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "edgemoe", "run", "--checkpoint", str(tiny_checkpoint), "--image",
                          str(photo), "--backend", "cpu", "--xclbin", str(xclbin), "--num-heads", "2", "--top-k", "2",
                          "--image-size", "64", "96", "--out", str(tmp_path / "out2")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "only backend='fpga' takes this option" in bad.stderr


def test_fpga_trace_has_the_names_and_shapes_of_emu(noop, tiny_state):
    """The stage-by-stage read-back and the gate replay run the whole host flow on fpga (noop
    computes nothing, so only names, shapes and dtypes are compared)."""
    images = _images(TINY, 2, 4)
    fpga = edgemoe.Model(TINY, tiny_state, "fpga", xclbin=noop)
    emu = edgemoe.Model(TINY, tiny_state, "emu")
    a, b = emu.trace(images, "semseg"), fpga.trace(images, "semseg")
    assert b.source == "fpga" and list(a) == list(b)
    for name in a:
        assert a[name].shape == b[name].shape and a[name].dtype == b[name].dtype, name


def test_cli_compare_takes_the_fpga_options_for_the_fpga_side_only(noop, tmp_path, capsys):
    from edgemoe.cli import main

    ckpt = synthetic.save_m3vit_checkpoint(synthetic.seeded_model(TINY, 0), tmp_path / "ckpt", world_size=2)
    H, W = TINY.image_size
    code = main(["compare", "--checkpoint", str(ckpt), "--backends", "emu", "fpga", "--xclbin", noop,
                 "--task", "semseg", "--image-size", str(H), str(W), "--top-k", str(TINY.top_k),
                 "--num-heads", str(TINY.num_heads)])
    out = capsys.readouterr().out
    assert "fpga vs emu, task semseg" in out
    assert code == 3 and "first layer over its threshold" in out  # noop computes nothing


def _edit_kernel_xml(data: bytes, old: bytes, new: bytes) -> bytes:
    """The xclbin with one attribute of its kernel XML rewritten in place (same length: no section moves)."""
    assert len(old) == len(new) and data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


@pytest.mark.parametrize("old, new", [
    (b'offset="0x1C"', b'offset="0x10"'),  # weights over images
    (b'offset="0x10"', b'offset="0x1C"'),  # images over weights: the two swapped halfway
    (b'offset="0x10" hostOffset="0x0"', b'offset="0xfffffffffffffffc"   '),  # wraps offset + size
    (b'offset="0x10"', b'offset="0x14"'),  # inside the map, aligned, and still wrong
], ids=["overlap", "duplicate", "wrapping", "shifted"])
def test_register_offsets_must_be_the_kernels_map(noop, tiny_state, tmp_path, old, new):
    path = tmp_path / "offsets.xclbin"
    path.write_bytes(_edit_kernel_xml(open(noop, "rb").read(), old, new))
    with pytest.raises(ValueError, match=r"sits at register offset 0x[0-9a-f]+, expected 0x1") as refused:
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(path))
    assert str(path) in str(refused.value)


@pytest.mark.parametrize("old, new", [
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="1" id="x"'),  # XRT's stoul
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="1" id="9"'),
], ids=["id-not-a-number", "id-out-of-order"])
def test_xclbin_field_errors_name_the_xclbin_not_the_checkpoint(noop, tiny_checkpoint, tmp_path, old, new):
    path = tmp_path / "fields.xclbin"
    path.write_bytes(_edit_kernel_xml(open(noop, "rb").read(), old, new))
    with pytest.raises(ValueError) as refused:
        edgemoe.Model.from_checkpoint(tiny_checkpoint, "fpga", xclbin=str(path), num_heads=2, top_k=2,
                                      image_size=(64, 96))
    assert not isinstance(refused.value, edgemoe.CheckpointError)
    assert str(refused.value).startswith("xclbin") and str(path) in str(refused.value)
