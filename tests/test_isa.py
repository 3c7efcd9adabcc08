"""One build for every x86-64 CPU (issue 19, part 3): the hand-written kernels exist once per ISA path
(csrc/core/isa.h) and are picked at run time. Each path this CPU runs must give the CPU backend's
results (within fp32 reassociation: FMA contraction and vector width change rounding, not the maths)
and the emulated accelerator's exact bits; a CPU without AVX runs the baseline path."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import edgemoe

BUILD = edgemoe.info()["build"]
SUPPORTED = BUILD["isa_supported"]

# A forward pass in a child process that forces one path; prints what the parent compares.
CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import torch, edgemoe
model = edgemoe.Model.pretrained(num_threads=int(sys.argv[1]))
x = edgemoe.preprocess(edgemoe.imaging.sample_photo(), model.config.image_size)
torch.manual_seed(0)
x2 = torch.cat([x, torch.randn_like(x)])
outs = model(x2, tasks=model.tasks)
emu = edgemoe.Model.pretrained("emu", num_threads=1).features(x2, "semseg")
emu_two_threads = edgemoe.Model.pretrained("emu", num_threads=2)
emu_split = emu_two_threads.features(x2, "semseg")
emu_head = emu_two_threads(x2, task="semseg")  # the head on the accelerator
torch.save({"outs": outs, "emu": emu, "emu_split": emu_split, "emu_head": emu_head,
            "isa": edgemoe.info()["build"]["isa"]}, sys.argv[2])
"""


def _run_path(isa, tmp_path, threads=min(2, os.cpu_count() or 1), prefix=(), force=True):
    out = tmp_path / f"{isa}.pt"
    env = dict(os.environ)
    env.pop("EDGEMOE_FORCE_ISA", None)
    if force:
        env["EDGEMOE_FORCE_ISA"] = isa
    proc = subprocess.run([*prefix, sys.executable, "-c", CHILD, str(threads), str(out)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("isa")
    return {isa: _run_path(isa, tmp) for isa in SUPPORTED}


def test_build_is_portable_and_reports_its_paths():
    if BUILD["arch"] in ("x86_64", "AMD64"):
        assert BUILD["isa_compiled"] == ["baseline", "avx2", "avx512"]
        assert not BUILD["native_cpu_tuning"], "the default build must not be tuned with -march=native"
    assert BUILD["isa"] in SUPPORTED
    assert BUILD["isa"] == SUPPORTED[-1], "the best path this CPU runs is the default"


def test_every_path_gives_the_same_model(paths):
    best = paths[SUPPORTED[-1]]
    for isa, result in paths.items():
        assert result["isa"] == isa
        for task, out in result["outs"].items():
            ref = best["outs"][task]
            # Paths differ only in rounding (FMA, summation order over 8 vs 16 lanes): relative
            # differences ~1e-6 per layer, measured 1.3e-6 at most across 18 layers; 1e-4 of the
            # output's range leaves room for that and fails on any real kernel difference.
            scale = ref.abs().max().item()
            assert (out - ref).abs().max().item() <= 1e-4 * scale, (isa, task)
        # The accelerator's kernels are fixed-point: identical bits on every path, and whether or not
        # the emulation splits its jobs over two threads (kernels/src/emu_parallel.h).
        assert torch.equal(result["emu"], best["emu"]), isa
        assert torch.equal(result["emu_split"], result["emu"]), isa
        # The heads' emulated convolutions and upsampling (exact sums, micro-kernels sized per ISA).
        assert torch.equal(result["emu_head"], best["emu_head"]), isa


def test_forcing_an_unknown_or_unsupported_path_is_refused(tmp_path):
    code = "import edgemoe\nedgemoe.Model.pretrained()"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, EDGEMOE_FORCE_ISA="sse9"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "EDGEMOE_FORCE_ISA=sse9" in proc.stderr and "ValueError" in proc.stderr
    info = subprocess.run([sys.executable, "-c", "import edgemoe, json; print(json.dumps(edgemoe.info()['build']))"],
                          env=dict(os.environ, EDGEMOE_FORCE_ISA="sse9"), capture_output=True, text=True, timeout=300)
    assert "sse9" in json.loads(info.stdout.strip().splitlines()[-1])["isa_request_error"]


QEMU = shutil.which("qemu-x86_64-static")


@pytest.mark.skipif(BUILD["arch"] != "x86_64", reason="x86-64 builds only")
def test_runs_on_an_avx2_only_cpu(tmp_path):
    """qemu's Haswell model has AVX2 and no AVX-512: the build a machine with AVX-512 made must run
    there (before issue 19 it died with SIGILL) and pick the avx2 path, with the same results."""
    assert QEMU, "qemu-user-static is missing (make test installs it)"
    native = _run_path(SUPPORTED[-1], tmp_path, threads=1)
    emulated = _run_path("avx2", tmp_path, threads=1, prefix=(QEMU, "-cpu", "Haswell"), force=False)
    assert emulated["isa"] == "avx2", "the best path an AVX2-only CPU runs is picked by itself"
    for task, out in emulated["outs"].items():
        ref = native["outs"][task]
        assert (out - ref).abs().max().item() <= 1e-4 * ref.abs().max().item(), task
    assert torch.equal(emulated["emu"], native["emu"])
    assert torch.equal(emulated["emu_head"], native["emu_head"])
