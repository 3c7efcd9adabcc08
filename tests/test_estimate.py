"""Model.estimate and `python -m edgemoe estimate`: the latency and resource model computed from the kernel's
own loops (kernels/src/cycle_ledger.h). The counts must be the loops that actually ran: MACs equal the layers'
sizes times the tokens each sees, expert work and weight traffic follow the image's routing (moe_trace), rows
add up to the total, and a model the board's build cannot hold is refused naming the limit."""
import dataclasses
import numpy as np
import pytest
import torch

import edgemoe
from edgemoe import synthetic
from edgemoe.cli import main as cli
from edgemoe.estimate import HEAD_STAGE, RESOURCE_BUDGET


@pytest.fixture(scope="module")
def vit_t():
    config = synthetic.preset("cityscapes-vit-t")
    state = synthetic.seeded_model(config, seed=3).state_dict()
    return edgemoe.Model(config, state, "cpu", num_threads=2)


@pytest.fixture(scope="module")
def estimate(vit_t):
    images = synthetic.pixel_images(vit_t.config, batch=1, seed=5)
    return vit_t.estimate(board="zcu102", images=images, task="semseg")


def _unit(est, stage, unit):
    rows = [u for u in est.units if u.stage == stage and u.unit == unit]
    assert len(rows) == 1, (stage, unit, [(u.stage, u.unit) for u in est.units])
    return rows[0]


def test_rows_cover_every_stage_and_add_up(vit_t, estimate):
    c = vit_t.config
    assert estimate.board == "zcu102" and estimate.device == "XCZU9EG" and estimate.clock_mhz == 250
    assert estimate.top_k == c.top_k == 2
    head_stages = set(range(HEAD_STAGE, HEAD_STAGE + 6))  # head.stage0..3, head.logits, output
    assert {u.stage for u in estimate.units} == set(range(-1, 2 * c.depth)) | head_stages
    assert sum(u.cycles for u in estimate.units) == estimate.total_cycles > 0
    assert estimate.milliseconds == pytest.approx(estimate.total_cycles / 250e3)
    for u in estimate.units:
        if u.unit == "weight fetch":  # its time is what the job running meanwhile does not hide
            assert 0 <= u.cycles <= u.compute_cycles + u.memory_cycles
        else:  # a loop cannot finish before it has issued its iterations
            assert u.cycles >= u.compute_cycles > 0
        assert u.bound in ("compute", "memory")
        if u.mac_utilisation is not None:
            assert 0 < u.mac_utilisation <= 1
    moe_stages = {2 * b + 1 for b in c.moe_blocks}
    assert {u.stage for u in estimate.units if u.unit == "expert fc1"} == moe_stages
    assert {u.stage for u in estimate.units if u.unit == "mlp fc1"} == set(range(1, 2 * c.depth, 2)) - moe_stages
    text = str(estimate)
    assert "total:" in text and "DSP" in text and "block 11 mlp" in text


def test_macs_are_the_layers_the_kernel_ran(vit_t, estimate):
    c = vit_t.config
    n, D = c.num_tokens, c.embed_dim
    assert _unit(estimate, 0, "qkv").macs == n * 3 * D * D
    assert _unit(estimate, 0, "proj").macs == n * D * D
    assert _unit(estimate, 1, "mlp fc1").macs == n * c.mlp_hidden * D
    assert _unit(estimate, -1, "patch embedding").macs == (n - 1) * D * 3 * c.patch_size ** 2
    assert _unit(estimate, 0, "attention").macs == 2 * n * n * D  # q.k and p.v of every row and key, all heads
    # The head's convolutions: rows are output pixels, K = 9 C_in (1 x 1: C_in), conv_4's outputs padded to
    # whole 16-channel words (kernels/src/head.h)
    gh, gw, C = c.grid[0], c.grid[1], c.head_channels
    assert _unit(estimate, HEAD_STAGE, "head conv").macs == gh * gw * C * 9 * D
    assert _unit(estimate, HEAD_STAGE + 3, "head conv").macs == 64 * gh * gw * C * 9 * C
    assert _unit(estimate, HEAD_STAGE + 4, "head conv").macs == 64 * gh * gw * 16 * C
    assert _unit(estimate, HEAD_STAGE + 5, "head upsample").bytes > 0 and _unit(estimate, HEAD_STAGE, "layernorm").macs == 0


def test_moe_load_follows_the_routing(vit_t, estimate):
    """Expert MACs and weight fetches of each MoE layer are what the image's routing asks for: tokens per
    expert times the expert's size, and each active expert's two matrices fetched once."""
    c = vit_t.config
    trace = estimate.moe_trace  # [MoE layers, 3, experts]: tokens, fc1 fetches, fc2 fetches
    assert trace.shape == (len(c.moe_blocks), 3, c.num_experts)
    D, Hm = c.embed_dim, c.expert_hidden
    for layer, block in enumerate(c.moe_blocks):
        tokens, fc1, fc2 = trace[layer]
        assert tokens.sum() == c.num_tokens * c.top_k
        assert _unit(estimate, 2 * block + 1, "expert fc1").macs == tokens.sum() * Hm * D
        assert _unit(estimate, 2 * block + 1, "expert fc2").macs == tokens.sum() * D * Hm
        active = int((tokens > 0).sum())
        assert (fc1 == (tokens > 0)).all() and (fc2 == (tokens > 0)).all()
        fetched = _unit(estimate, 2 * block + 1, "weight fetch").bytes
        # rows of 64-byte words of 28 weights (kernels/src/layout.h) on the weights bundle, 4-byte biases on params
        words = Hm * -(-D // 28) + D * -(-Hm // 28)
        assert fetched == active * (words * 64 + (Hm + D) * 4)


def test_weight_fetch_overlaps_the_job_beside_it(vit_t, estimate):
    """linear_step is a dataflow region of the job on one buffer and the fetch into the other
    (kernels/src/linear.h), so a fetch costs only what the job beside it does not hide. A dense MLP half
    fetches fc1 with nothing to run (charged in full) and fc2 while fc1 runs (the job is longer: hidden),
    equal-sized matrices of whole rows of 28-weight words: its visible fetch time is about half its
    memory time, and the fc1 job's row carries the overlapped region."""
    fetch = _unit(estimate, 1, "weight fetch")  # block 0's MLP half (dense)
    fc1 = _unit(estimate, 1, "mlp fc1")
    c = vit_t.config
    fc1_words, fc2_words = c.mlp_hidden * -(-c.embed_dim // 28), c.embed_dim * -(-c.mlp_hidden // 28)
    assert fc1_words == fc2_words
    assert fetch.bytes == (fc1_words + fc2_words) * 64 + (c.mlp_hidden + c.embed_dim) * 4
    assert 0 < fetch.cycles < fetch.memory_cycles
    assert fetch.cycles >= 0.45 * fetch.memory_cycles  # fc1's fetch, exposed
    assert fc1.cycles >= fetch.memory_cycles / 2  # the job that hid fc2's fetch outlasts it


def test_estimate_leaves_the_model_and_emu_untouched(vit_t):
    images = synthetic.pixel_images(vit_t.config, batch=1, seed=6)
    emu = edgemoe.Model(vit_t.config, synthetic.seeded_model(vit_t.config, seed=3).state_dict(), "emu")
    before = emu.features(images, "semseg")
    first = emu.estimate(board="zcu102", images=images, task="semseg")
    after = emu.features(images, "semseg")
    assert torch.equal(before, after)
    second = vit_t.estimate(board="zcu102", images=images, task="semseg")
    assert first.total_cycles == second.total_cycles  # deterministic, whichever backend asks


def test_boards_and_their_limits(estimate):
    tiny = synthetic.preset("tiny")
    model = edgemoe.Model(tiny, synthetic.seeded_model(tiny, seed=0).state_dict(), "cpu")
    images = synthetic.pixel_images(tiny, batch=1, seed=1)
    u280 = model.estimate(board="U280", images=images)
    assert u280.device == "XCU280"
    assert dict((r, a) for r, _, a in estimate.resources) == {"DSP": 2520, "BRAM36": 912, "URAM": 0, "LUT": 274080}
    assert dict((r, a) for r, _, a in u280.resources[:4]) == {"DSP": 9024, "BRAM36": 2016, "URAM": 960, "LUT": 1303680}
    assert len(estimate.resources) == 4  # one die: no SLR rows
    # four heads (head dim 16) are beyond the ZCU102 build's three
    four_heads = dataclasses.replace(tiny, num_heads=4)
    wide = edgemoe.Model(four_heads, synthetic.seeded_model(four_heads, seed=0).state_dict(), "cpu")
    with pytest.raises(ValueError, match="EDGEMOE_MAX_HEADS = 3"):
        wide.estimate(board="zcu102", images=images)
    with pytest.raises(ValueError, match="unknown board 'vc707'"):
        model.estimate(board="vc707", images=images)
    with pytest.raises(TypeError, match="board must be a str"):
        model.estimate(board=102, images=images)
    with pytest.raises(ValueError, match="unknown task"):
        model.estimate(board="zcu102", images=images, task="depth")
    with pytest.raises(ValueError, match=r"images must have shape"):
        model.estimate(board="zcu102", images=torch.zeros(1, 3, 8, 8))
    vit_s = synthetic.preset("pascal-vit-s")
    big = edgemoe.Model(vit_s, synthetic.seeded_model(vit_s, seed=0).state_dict(), "cpu")
    with pytest.raises(ValueError, match="EDGEMOE_MAX_DIM = 192"):
        big.estimate(board="zcu102", images=synthetic.pixel_images(vit_s, batch=1, seed=0))


def test_u280_floorplan_per_slr(estimate):
    """The U280 build spans three SLRs (kernels/config/u280.h): the resource table adds a row per resource and
    SLR, each SLR's parts add up to the device totals (shares rounded up, never down), each SLR offers a third of
    the device less the shell's part there, and the floorplan keeps every SLR within the 80 % budget."""
    tiny = synthetic.preset("tiny")
    model = edgemoe.Model(tiny, synthetic.seeded_model(tiny, seed=0).state_dict(), "cpu")
    u280 = model.estimate(board="u280", images=synthetic.pixel_images(tiny, batch=1, seed=1))
    totals = {r: (used, avail) for r, used, avail in u280.resources[:4]}
    per_slr = {r: (used, avail) for r, used, avail in u280.resources[4:]}
    assert sorted(per_slr) == sorted(f"{r} SLR{s}" for r in totals for s in range(3))
    for resource, (used, avail) in totals.items():
        slr_used = [per_slr[f"{resource} SLR{s}"][0] for s in range(3)]
        slr_avail = [per_slr[f"{resource} SLR{s}"][1] for s in range(3)]
        assert used <= sum(slr_used) <= used + 3 * 9, resource  # nine parts, each rounded up once per SLR
        assert all(a <= avail // 3 for a in slr_avail) and sum(slr_avail) >= 0.8 * avail, resource
    assert per_slr["LUT SLR0"][1] < per_slr["LUT SLR1"][1]  # the HBM controller's logic sits in SLR0
    assert u280.within_budget(RESOURCE_BUDGET)
    shares = [frac for name, _, _, frac in u280.resource_utilisation() if "SLR" in name]
    assert max(shares) <= RESOURCE_BUDGET and max(shares) > 0.5


def test_cli_estimate(tmp_path, capsys):
    ckpt = synthetic.cached_checkpoint("tiny", tmp_path)
    size = ["--image-size", "64", "96"]
    assert cli(["estimate", "--checkpoint", str(ckpt), "--board", "u280", "--task", "sal"] + size) == 0
    out = capsys.readouterr().out
    assert "on u280 (XCU280, 225 MHz), task 'sal', top-2" in out and "block 3 mlp" in out and "URAM" in out
    assert cli(["estimate", "--checkpoint", str(ckpt), "--board", "u280", "--clock-mhz", "300", "--summary"] + size) == 0
    assert "(XCU280, 300 MHz)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli(["estimate", "--checkpoint", str(ckpt), "--clock-mhz", "5000"] + size)
    assert "between 50 and 500 MHz" in capsys.readouterr().err
    assert cli(["estimate", "--checkpoint", str(ckpt), "--board", "u280", "--summary", "--top-k", "1"] + size) == 0
    out = capsys.readouterr().out
    assert "by unit" in out and "block 0" not in out
    assert cli(["estimate", "--checkpoint", str(ckpt), "--task", "nope"] + size) == 2
    assert cli(["estimate", "--checkpoint", str(ckpt), "--num-heads", "4"] + size) == 1  # beyond the ZCU102 build
    assert "EDGEMOE_MAX_HEADS" in capsys.readouterr().err


def test_csynth_comparison_flags_a_missed_ii(tmp_path, capsys):
    """kernels/tools/csynth_vs_model.py reads the declared IIs from the sources and the achieved ones from a
    csynth report (here a hand-written one in Vitis's layout: loops as elements with PipelineII/Depth)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "kernels" / "tools" / "csynth_vs_model.py"
    spec = importlib.util.spec_from_file_location("csynth_vs_model", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    declared = tool.declared_loops()
    assert declared["mac_steps"] == 1 and declared["load_weights"] == 2 and declared["rows_loop"] == 1
    report = tmp_path / "csynth.xml"
    report.write_text("""<profile><PerformanceEstimates><SummaryOfLoopLatency>
      <images_loop><TripCount>1024</TripCount>
        <mac_steps_1><TripCount>1485000</TripCount><PipelineII>1</PipelineII><PipelineDepth>14</PipelineDepth></mac_steps_1>
        <sweep_loop><TripCount>9000</TripCount><PipelineII>4</PipelineII><PipelineDepth>20</PipelineDepth></sweep_loop>
        <VITIS_LOOP_52_1><TripCount>64</TripCount><PipelineII>1</PipelineII><PipelineDepth>3</PipelineDepth></VITIS_LOOP_52_1>
      </images_loop></SummaryOfLoopLatency></PerformanceEstimates></profile>""")
    assert tool.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert lines["mac_steps_1"].endswith("ok") and lines["sweep_loop"].endswith("MISSED")
    assert lines["VITIS_LOOP_52_1"].endswith("unlabelled") and "not in report" in lines["load_weights"]
    assert "1 loop(s) missed" in out


def test_clock_sets_time_and_memory_bandwidth_per_cycle(vit_t):
    """Cycles of a compute-bound loop do not depend on the clock; bytes per cycle do (the platform gives
    bytes per second), so a memory-bound loop needs more cycles at a faster clock."""
    images = synthetic.pixel_images(vit_t.config, batch=1, seed=0)
    slow, fast = (vit_t.estimate(board="zcu102", images=images, task="semseg", clock_mhz=mhz) for mhz in (200, 400))
    assert (slow.clock_mhz, fast.clock_mhz) == (200, 400)
    assert fast.milliseconds == pytest.approx(fast.total_cycles / 400e3)
    by_key = {(u.stage, u.unit): u for u in slow.units}
    for u in fast.units:
        s = by_key[(u.stage, u.unit)]
        assert u.compute_cycles == s.compute_cycles and u.bytes == s.bytes
        assert u.memory_cycles >= s.memory_cycles
    assert any(u.memory_cycles > by_key[(u.stage, u.unit)].memory_cycles for u in fast.units)
    assert fast.milliseconds < slow.milliseconds < 2.01 * fast.milliseconds
    for bad, error in ((10, ValueError), (501, ValueError), ("300", TypeError), (300.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="clock_mhz"):
            vit_t.estimate(board="zcu102", images=images, clock_mhz=bad)


def test_expert_rows_single_beats_follow_each_bundles_requests_in_flight():
    """The experts' rows are gathered from xn and scattered into x by token: single beats, each waiting the read
    latency (64 cycles) with the bundle's requests in flight. The ZCU102's HP ports keep 16 (4 cycles a beat);
    on the U280 the act and scratch0 bundles keep 32 (kernels/config/u280.h: 2 cycles a beat)."""
    tiny = synthetic.preset("tiny")
    model = edgemoe.Model(tiny, synthetic.seeded_model(tiny, seed=0).state_dict(), "cpu")
    images = synthetic.pixel_images(tiny, batch=1, seed=1)
    for board in ("u280", "zcu102"):
        experts = [u for u in model.estimate(board=board, images=images).units if u.unit.startswith("expert")]
        assert len(experts) == 4 and all(u.single_beat_bytes > 0 for u in experts)
        for u in experts:
            beats, single = u.bytes / 64, u.single_beat_bytes / 64
            if u.unit == "expert fc1":  # its gathered rows (half its words) take 2 (U280) or 4 cycles a beat
                per_beat = 2 if board == "u280" else 4
                assert per_beat * single <= u.memory_cycles <= per_beat * single + (beats - single) + 100, (board, u.stage)
