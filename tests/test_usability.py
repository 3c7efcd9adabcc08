"""What a new user meets first (issue 19, part 4): dataset items checked one by one with messages that say what
an item must be, natural mistakes answered with the fix, preprocess's square sizes and its stretch warning,
the accelerator builds' limits in info() (the "which board do I need" table) and the warning for a model
that no board build can hold."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edgemoe
from edgemoe import boards, data, synthetic
from edgemoe.errors import AspectRatioWarning, BoardLimitWarning

from conftest import tiny_config

KERNEL_CONFIGS = Path(__file__).resolve().parent.parent / "kernels" / "config"


@pytest.fixture(scope="module")
def model(tiny_model):
    return edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()))


@pytest.fixture(scope="module")
def items(tiny_model):
    """Two synthetic scenes at the tiny model's size (semseg 5 classes, sal, normals) as plain dicts."""
    scenes = data.SyntheticScenes("test", 2, tiny_model.cfg.image_size)
    return [dict(scenes[i]) for i in range(2)]


# --- dataset items ---------------------------------------------------------------------------------------

def test_a_list_of_dicts_is_a_dataset_and_integer_labels_of_any_width_work(model, items, tiny_model):
    expected = edgemoe.evaluate(model, data.SyntheticScenes("test", 2, tiny_model.cfg.image_size), progress=False)
    assert edgemoe.evaluate(model, items, progress=False) == expected
    narrow = [dict(it, semseg=it["semseg"].to(torch.uint8), sal=it["sal"].to(torch.uint8)) for it in items]
    assert edgemoe.evaluate(model, narrow, progress=False) == expected


def test_an_item_that_is_not_a_dict_says_what_an_item_must_be(model, items):
    with pytest.raises(TypeError, match=r"dataset item 0 is a Tensor; an item must be a dict with 'image' "
                                        r"\(float32 \[3, H, W\]"):
        edgemoe.evaluate(model, [items[0]["image"]], progress=False)
    with pytest.raises(TypeError, match=r"dataset item 1 is a tuple; an item must be a dict"):
        edgemoe.evaluate(model, [items[0], (items[1]["image"], items[1]["semseg"])], progress=False)
    with pytest.raises(TypeError, match=r"dataset must support len\(\) and dataset\[i\].*got generator"):
        edgemoe.evaluate(model, (it for it in items), progress=False)


def _with(item, **changes):
    out = dict(item)
    for key, value in changes.items():
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("change, error, message", [
    (lambda it: {"image": it["image"].double()}, ValueError, r"item 1: 'image' must be float32"),
    (lambda it: {"image": it["image"][None]}, ValueError, r"item 1: 'image' must be \[3, H, W\].*\(1, 3, 64, 96\)"),
    (lambda it: {"image": it["image"][:, :32]}, ValueError, r"item 1: images are \(32, 96\), the model takes \(64, 96\)"),
    (lambda it: {"image": it["image"].numpy()}, TypeError, r"item 1: 'image' must be a torch.Tensor, got ndarray"),
    (lambda it: {"image": None}, ValueError, r"item 1 has no 'image'; keys: \['depth', 'edge'"),
    (lambda it: {"sal": None}, ValueError, r"item 1 has no 'sal' target; keys: .*; an item must be a dict"),
    (lambda it: {"semseg": it["semseg"][:, :95]}, ValueError, r"item 1: 'semseg' must have shape \[64, 96\].*\(64, 95\)"),
    (lambda it: {"semseg": it["semseg"].float()}, ValueError, r"item 1: 'semseg' must hold integer class ids"),
    (lambda it: {"semseg": it["semseg"] + 5}, ValueError, r"item 1: 'semseg' holds class ids outside 0 \.\. 4 and 255"),
    (lambda it: {"sal": it["sal"] * 200}, ValueError, r"item 1: 'sal' must be in \[0, 1\] or 255 \(ignore\), got 200"),
    (lambda it: {"normals": it["normals"][:2]}, ValueError, r"item 1: 'normals' must have shape \[3, 64, 96\]"),
    (lambda it: {"normals": it["normals"].to(torch.int64)}, ValueError, r"item 1: 'normals' must be a float tensor"),
    (lambda it: {"normals": it["normals"] * float("nan")}, ValueError, r"item 1: 'normals' holds NaN or Inf"),
], ids=["image-float64", "image-batched", "image-size", "image-numpy", "no-image", "no-target", "semseg-shape",
        "semseg-float", "semseg-range", "sal-grey-levels", "normals-shape", "normals-int", "normals-nan"])
def test_a_wrong_item_names_its_index_and_key(model, items, change, error, message):
    """The second item is the wrong one: every item is checked, not only the first."""
    bad = _with(items[1], **change(items[1]))
    with pytest.raises(error, match=message):
        edgemoe.evaluate(model, [items[0], bad], progress=False)


def test_depth_must_be_metres():
    cfg = tiny_config(tasks=(("depth", 1),), gate_num_tasks=1)
    depth_model = edgemoe.Model(cfg, dict(synthetic.seeded_model(cfg, 0).state_dict()))
    item = dict(data.SyntheticScenes("test", 1, cfg.image_size)[0])
    assert edgemoe.evaluate(depth_model, [item], progress=False)["depth"] > 0
    millimetres = dict(item, depth=(item["depth"] * 1000).to(torch.int32))
    with pytest.raises(ValueError, match=r"item 0: 'depth' must be a float tensor in metres"):
        edgemoe.evaluate(depth_model, [millimetres], progress=False)


def test_evaluate_takes_one_task_name(model, items):
    assert list(edgemoe.evaluate(model, items, tasks="sal", progress=False)) == ["sal"]


def test_the_progress_bar_names_the_backend_and_counts_images(model, items):
    import io

    stream = io.StringIO()
    edgemoe.evaluate(model, items * 2, batch_size=3, stream=stream)
    assert "evaluate cpu" in stream.getvalue() and "4/4 images" in stream.getvalue()
    assert "3/4 images" in stream.getvalue()  # advanced by a whole batch


# --- natural mistakes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [Image.new("RGB", (96, 64)), np.zeros((64, 96, 3), np.uint8), "photo.jpg"],
                         ids=["PIL", "numpy", "path"])
def test_a_photo_instead_of_a_tensor_points_to_preprocess(model, image):
    fix = re.escape("use edgemoe.preprocess(image, model.config.image_size)")
    with pytest.raises(TypeError, match=fix):
        model(image, task="semseg")
    with pytest.raises(TypeError, match=fix):
        model.features(image, "semseg")
    with pytest.raises(TypeError, match=fix):
        model.trace(image, "semseg")


def test_other_image_mistakes_say_the_fix(model):
    x = synthetic.pixel_images(model.config, 1)
    with pytest.raises(ValueError, match=re.escape("images[None] adds the batch dimension")):
        model(x[0], task="semseg")
    with pytest.raises(ValueError, match=re.escape("for uint8 pixels use edgemoe.preprocess")):
        model(torch.zeros(1, 3, 64, 96, dtype=torch.uint8), task="semseg")


def test_tasks_as_one_string_is_that_task(model):
    x = synthetic.pixel_images(model.config, 1)
    out = model(x, tasks="semseg")
    assert list(out) == ["semseg"] and torch.equal(out["semseg"], model(x, task="semseg"))
    with pytest.raises(TypeError, match=r"task must be one task name.*tasks=\[\.\.\.\]"):
        model(x, task=["semseg"])
    with pytest.raises(TypeError, match="tasks must be a list of task names, got int"):
        model(x, tasks=3)


def test_preprocess_takes_a_square_size_as_one_int():
    array = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert torch.equal(edgemoe.preprocess(array, 32), edgemoe.preprocess(array, (32, 32)))
    assert edgemoe.preprocess(array, np.int64(24)).shape == (1, 3, 24, 24)


@pytest.mark.parametrize("size, error, message", [
    (0, ValueError, r"image_size H must be between 1 and 16384 pixels, got 0"),
    (-3, ValueError, r"got -3"),
    ((64, 0), ValueError, r"image_size W must be between 1"),
    (10 ** 6, ValueError, r"between 1 and 16384"),
    (True, TypeError, r"image_size must be an int \(a square side\) or a pair"),
    ((64, True), TypeError, r"image_size W must be an int, got bool"),
    ((64.0, 64.0), TypeError, r"image_size H must be an int, got float"),
    ("224", TypeError, r"image_size must be an int"),
    ((1, 2, 3), TypeError, r"a pair \(H, W\)"),
])
def test_preprocess_refuses_sizes_that_are_not_sizes(size, error, message):
    with pytest.raises(error, match=message):
        edgemoe.preprocess(np.zeros((8, 8, 3), np.uint8), size)


def test_preprocess_refuses_a_tensor_saying_where_it_goes():
    with pytest.raises(TypeError, match="goes to the model as it is"):
        edgemoe.preprocess(torch.zeros(1, 3, 8, 8), 8)
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert torch.equal(edgemoe.preprocess(torch.from_numpy(pixels), 8), edgemoe.preprocess(pixels, 8))


def test_preprocess_warns_when_it_changes_the_aspect_ratio():
    square = np.zeros((200, 200, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edgemoe.preprocess(square, (200, 201))  # 0.5 %: not worth a warning
        edgemoe.preprocess(square, 100)         # scaled, same shape
    with pytest.warns(AspectRatioWarning, match=r"200 x 200 \(H x W\) image to 200 x 204: its aspect ratio \(W / H\) "
                                                r"changes from 1\.000 to 1\.020 \(\+2 %\)"):
        edgemoe.preprocess(square, (200, 204))
    with pytest.warns(AspectRatioWarning, match=r"from 1\.000 to 2\.000 \(\+100 %\)"):
        edgemoe.preprocess(square, (128, 256))


# --- the accelerator builds: which board a model needs ---------------------------------------------------

def _header_values(build: str) -> dict:
    text = (KERNEL_CONFIGS / f"{build}.h").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"#define EDGEMOE_(\w+) (\S+)", text)}


def test_info_has_each_builds_limits_as_its_kernel_config_sets_them():
    """The table in info() is what kernels/config/*.h compile in, as each build's kernel reports it."""
    builds = edgemoe.info()["boards"]
    assert list(builds) == ["emu", "zcu102", "u280"]
    word = re.search(r"constexpr int kWordElems = (\d+);",
                     (KERNEL_CONFIGS.parent / "src" / "formats.h").read_text()).group(1)
    for name, limits in builds.items():
        header = _header_values(name)
        assert header["CFG_NAME"] == f'"{name}"'
        for key in boards.LIMIT_NAMES:
            assert limits[key] == int(header[key.upper()]), (name, key)
        assert limits["attn_lanes"] == int(header["ATTN_LANES"])
        assert limits["activation_word_elements"] == int(word)
        assert limits["device"] == (header["DEVICE_NAME"].strip('"') if "DEVICE_NAME" in header else None)


def test_info_prints_the_board_table():
    from edgemoe.info import format_info

    text = format_info(edgemoe.info())
    assert re.search(r"width\s+768\s+192\s+384", text) and re.search(r"tokens \(1 \+ patches\)\s+1201\s+129\s+1201", text)
    assert re.search(r"heads\s+12\s+3\s+12", text) and re.search(r"experts\s+16\s+16\s+16", text)


@pytest.mark.parametrize("changes", [
    {},                                                 # fits both boards
    {"num_heads": 4},                                   # zcu102: 4 heads > 3; u280: head dim 16 not a multiple of 32
    {"image_size": (192, 192)},                         # 145 tokens > the zcu102's 129
    {"num_experts": 4, "expert_hidden": 400},           # u280's 768 holds it, the zcu102's 384 does not
], ids=["fits", "heads", "tokens", "expert-hidden"])
def test_the_python_limits_agree_with_the_native_check(changes):
    """edgemoe.boards.misfits says a board cannot hold a model exactly when that board's own kernel build
    (run by Model.estimate) refuses it, naming the same config macro."""
    cfg = tiny_config(**changes)
    model = edgemoe.Model(cfg, dict(synthetic.seeded_model(cfg, 0).state_dict()))
    images = synthetic.pixel_images(cfg, 1)
    builds = boards.kernel_builds()
    for board in boards.board_names(builds):
        reasons = boards.misfits(cfg, builds[board])
        if reasons:
            with pytest.raises(ValueError, match="the accelerator cannot run this model") as refused:
                model.estimate(board=board, images=images)
            macro = re.search(r"EDGEMOE_\w+", str(refused.value)).group(0)
            assert macro in reasons[0], (board, reasons, str(refused.value))
        else:
            assert model.estimate(board=board, images=images).total_cycles > 0
    assert boards.boards_that_fit(cfg) == [b for b in ("zcu102", "u280") if not boards.misfits(cfg, builds[b])]


def test_a_model_no_board_can_hold_warns_once_on_emu(tiny_model):
    cfg = tiny_config(num_heads=4)
    state = dict(synthetic.seeded_model(cfg, 0).state_dict())
    with pytest.warns(BoardLimitWarning) as caught:
        edgemoe.Model(cfg, state, "emu")
    assert len([w for w in caught if w.category is BoardLimitWarning]) == 1
    assert re.search(r"fits no FPGA board build.*zcu102: heads 4 > EDGEMOE_MAX_HEADS = 3.*u280: head dimension 16 is "
                     r"not a multiple of EDGEMOE_ATTN_LANES = 32", str(caught[0].message))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edgemoe.Model(cfg, state, "cpu")  # cpu has no build limits
        edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()), "emu")  # fits the zcu102
