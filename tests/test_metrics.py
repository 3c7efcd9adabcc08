"""The task metrics against cases computed by hand."""
import math

import pytest
import torch

from edgemoe import metrics


def test_miou_pools_pixels_and_ignores_255():
    m = metrics.meter("semseg", 3)
    pred = torch.tensor([[[0, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [0, 255]]])
    m.update(pred, target)
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; class 2 never occurs -> 0
    assert m.result() == pytest.approx(100 * (0.5 + 0.5 + 0) / 3)
    m.update(torch.tensor([[[2]]]), torch.tensor([[[2]]]))  # a second image adds to the same counts
    assert m.result() == pytest.approx(100 * (0.5 + 0.5 + 1) / 3)
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1, 0, 0] = logits[0, 2, 0, 1] = 1  # argmax over channels
    m2 = metrics.meter("human_parts", 3)
    m2.update(logits, torch.tensor([[[1, 2]]]))
    assert m2.result() == pytest.approx(100 * 2 / 3)
    with pytest.raises(ValueError, match="labels"):
        m2.update(logits, torch.tensor([[[1, 7]]]))


def test_saliency_maxf():
    m = metrics.meter("sal")
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    out = torch.full((1, 1, 2, 2), logit(0.1))
    out[0, 0, 0, 0] = out[0, 0, 0, 1] = logit(0.8)
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    m.update(out, target)
    # thresholds below 0.8: 2 predicted, 1 right: P = R = 1/2 -> F = 1/2; above: nothing predicted -> 0
    assert m.result() == pytest.approx(0.5, abs=1e-6)


def test_normals_mean_angle():
    m = metrics.meter("normals")
    out = torch.zeros(1, 3, 1, 3)
    out[0, 0, 0, 0] = 5.0          # (1, 0, 0) after normalisation, against (0, 1, 0): 90 degrees
    out[0, 1, 0, 1] = 0.5          # (0, 1, 0) against (0, 1, 0): 0 degrees
    target = torch.zeros(1, 3, 1, 3)
    target[0, 1] = 1.0
    target[0, :, 0, 2] = 255       # ignored
    m.update(out, target)
    assert m.result() == pytest.approx(45.0)


def test_depth_rmse_over_measured_pixels():
    m = metrics.meter("depth")
    m.update(torch.tensor([[[[3.0, 5.0, 9.0]]]]), torch.tensor([[[2.0, 2.0, 0.0]]]))
    assert m.result() == pytest.approx(math.sqrt((1 + 9) / 2))


def test_edge_f_with_tolerance():
    target = torch.zeros(1, 20, 20)
    target[0, :, 5] = 1
    near = torch.full((1, 1, 20, 20), -10.0)
    near[0, 0, :, 6] = 10.0  # one pixel off: within the tolerance (at least one pixel)
    m = metrics.meter("edge")
    m.update(near, target)
    assert m.result() == pytest.approx(1.0, abs=1e-6)
    far = torch.full((1, 1, 20, 20), -10.0)
    far[0, 0, :, 9] = 10.0
    m = metrics.meter("edge")
    m.update(far, target)
    assert m.result() == pytest.approx(0.0, abs=1e-6)
    half = torch.full((1, 1, 20, 20), -10.0)
    half[0, 0, :10, 5] = 10.0  # rows 0-9 found, nothing wrong: P 1; rows 0-10 lie within a pixel: R 11/20
    m = metrics.meter("edge")
    m.update(half, target)
    assert m.result() == pytest.approx(2 * 0.55 / 1.55, abs=1e-6)


def test_edge_tolerance_is_the_bsds_fraction_of_the_diagonal():
    """240 x 320: diagonal 400, tolerance 0.0075 x 400 = 3 pixels (BSDS maxDist). An edge 3 pixels off is
    found, one 5 pixels off is not; a tolerance twice BSDS's (6 pixels) would find both."""
    target = torch.zeros(1, 240, 320)
    target[0, :, 100] = 1

    def f_for_offset(dx):
        pred = torch.full((1, 1, 240, 320), -10.0)
        pred[0, 0, :, 100 + dx] = 10.0
        m = metrics.meter("edge")
        m.update(pred, target)
        return m.result()

    assert f_for_offset(3) == pytest.approx(1.0, abs=1e-6)
    assert f_for_offset(5) == pytest.approx(0.0, abs=1e-6)


def test_unknown_task_and_missing_classes():
    with pytest.raises(ValueError, match="no metric"):
        metrics.meter("keypoints")
    with pytest.raises(ValueError, match="classes"):
        metrics.meter("semseg")


# --- accumulators that merge exactly (issue 23) ------------------------------------------------------

def test_exact_sum_is_independent_of_order_and_grouping():
    import random

    values = [random.Random(3).uniform(-1, 1) * 10 ** random.Random(k).randint(-12, 12) for k in range(2000)]
    whole = metrics.ExactSum()
    for v in values:
        whole.add(v)
    assert whole.value == math.fsum(values)
    parts = [metrics.ExactSum() for _ in range(7)]
    for k, v in enumerate(reversed(values)):
        parts[k % 7].add(v)
    merged = metrics.ExactSum()
    for p in reversed(parts):
        merged.merge(p)
    assert merged.value == whole.value


@pytest.mark.parametrize("task", ["semseg", "human_parts", "sal", "normals", "edge", "depth"])
def test_meters_merged_over_any_split_equal_one_meter_bit_for_bit(task):
    from edgemoe import data

    scenes = data.SyntheticScenes("test", 6, (32, 64))
    gen = torch.Generator().manual_seed(7)
    channels = {"semseg": 21, "human_parts": 7, "normals": 3}.get(task, 1)
    outputs = [torch.randn(1, channels, 32, 64, generator=gen) for _ in range(6)]
    targets = [scenes[i][task][None] for i in range(6)]
    if task in ("semseg", "human_parts"):
        targets = [t.clamp_max(channels - 1) for t in targets]

    def meter_of(indices):
        m = metrics.meter(task, channels)
        for i in indices:
            m.update(outputs[i], targets[i])
        return m

    whole = metrics.meter(task, channels)
    whole.update(torch.cat(outputs), torch.cat(targets))  # one batch of six
    split = meter_of([4, 5]).merge(meter_of([0])).merge(meter_of([3, 1, 2]))
    assert split.result() == whole.result()
    with pytest.raises(TypeError, match="cannot merge"):
        whole.merge(metrics.meter("depth" if task != "depth" else "sal"))


def test_exact_sum_keeps_infinities_as_fsum_does():
    import math

    s = metrics.ExactSum()
    for v in (1.0, math.inf, 2.0):
        s.add(v)
    assert s.value == math.inf == math.fsum([1.0, math.inf, 2.0])
    s.add(-math.inf)
    assert math.isnan(s.value)
    t = metrics.ExactSum(3.0)
    t.merge(s)
    assert math.isnan(t.value)
