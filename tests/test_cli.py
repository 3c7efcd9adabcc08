"""`python -m edgemoe` as a user runs it (a fresh interpreter per command): `run` on folders, globs and files
with the built-in trained model, its refusals, help on every option, info's thread and board report,
estimate --summary, evaluate's progress bar, and errors as messages, never tracebacks."""
import argparse
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from edgemoe import cli
from edgemoe.errors import AspectRatioWarning
from edgemoe.imaging import palette, preprocess, unnormalise
from edgemoe.runner import _GAP, _TITLE_HEIGHT

BUILTIN_SIZE = (128, 256)  # the built-in trained model's input (edgemoe.data.trained_config)
BUILTIN_TASKS = ("semseg", "human_parts", "sal", "normals", "edge", "depth")


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgemoe", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _photo(path, shape, seed):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of three photos of different sizes, a text file and a subfolder with a photo of its own."""
    folder = tmp_path_factory.mktemp("photos")
    _photo(folder / "b.png", (128, 256), 1)
    _photo(folder / "a.jpg", (90, 120), 2)
    _photo(folder / "c.bmp", (64, 128), 3)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    _photo(folder / "sub" / "d.png", (64, 64), 4)
    return folder


def test_run_on_a_folder_writes_one_figure_per_image(photos, tmp_path):
    out = tmp_path / "out"
    done = _cli("run", "--image", photos, "--out", out, "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]  # not notes.txt, not sub/
    H, W = BUILTIN_SIZE
    for name, source in (("b", "b.png"), ("a", "a.jpg")):
        with Image.open(out / f"{name}.png") as png:
            figure = np.asarray(png.convert("RGB"))
        panels = 1 + len(BUILTIN_TASKS)
        assert figure.shape[1] == panels * W + (panels - 1) * _GAP and figure.shape[0] > _TITLE_HEIGHT + H
        # The first panel is the model's input, as preprocess made it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AspectRatioWarning)  # a.jpg is stretched, as in the run
            shown = unnormalise(preprocess(photos / source, BUILTIN_SIZE)[0])
        assert np.array_equal(figure[_TITLE_HEIGHT:_TITLE_HEIGHT + H, :W], shown)
        # The semseg panel holds only the class colours of the model's 5 classes.
        semseg = figure[_TITLE_HEIGHT:_TITLE_HEIGHT + H, W + _GAP:2 * W + _GAP].reshape(-1, 3)
        assert {tuple(c) for c in np.unique(semseg, axis=0)} <= {tuple(c) for c in palette(5)}
    # Three images in batches of 2: the shared call and the throughput report.
    text = done.stdout
    assert "3 images on cpu, tasks semseg, human_parts, sal, normals, edge, depth in one call per batch of up to 2" in text
    assert re.search(r"warm-up \(first call per batch size, not counted below\): [\d.]+ ms", text)
    assert re.search(r"model: [\d.]+ images/s, [\d.]+ ms per image; per batch of 2: median [\d.]+ ms .*1 batch\)", text)
    assert "note: 1 of 3 images were stretched" in text  # a.jpg is 3:4, the model 1:2
    assert "run cpu" in done.stderr and "3/3 images" in done.stderr


def test_run_takes_globs_and_files_each_image_once(photos, tmp_path):
    out = tmp_path / "out"
    done = _cli("run", "--image", photos / "c.bmp", "--image", f"{photos}/*.png", "--image", f"{photos}/*.bmp",
                "--out", out, "--task", "sal")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "c.png"]
    assert "2 images on cpu, tasks sal" in done.stdout
    with Image.open(out / "c.png") as png:
        assert png.size[0] == 2 * BUILTIN_SIZE[1] + _GAP


def test_run_never_overwrites_a_figure_without_force(photos, tmp_path):
    out = tmp_path / "out"
    assert _cli("run", "--image", photos / "c.bmp", "--out", out, "--task", "sal").returncode == 0
    before = (out / "c.png").read_bytes()
    (out / "c.png").write_bytes(b"mine")
    again = _cli("run", "--image", photos / "c.bmp", "--out", out, "--task", "sal")
    assert again.returncode == 1 and f"{out / 'c.png'} exists; pass --force to overwrite it" in again.stderr
    assert (out / "c.png").read_bytes() == b"mine"
    forced = _cli("run", "--image", photos / "c.bmp", "--out", out, "--task", "sal", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "c.png").read_bytes() == before  # the same figure again: the run is deterministic


@pytest.mark.parametrize("selection, message", [
    ("empty", "the directory holds no image files"),
    ("nothing*.png", "the pattern matches no image files"),
    ("missing.png", "no such file or directory"),
    ("notes.txt", "cannot read image"),
])
def test_run_refuses_a_selection_without_images(photos, tmp_path, selection, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    done = _cli("run", "--image", tmp_path / selection, "--out", tmp_path / "out")
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_run_refuses_two_images_with_one_output_name_and_writing_over_an_input(photos, tmp_path):
    twin = _photo(tmp_path / "b.png", (64, 128), 5)
    clash = _cli("run", "--image", photos / "b.png", "--image", twin, "--out", tmp_path / "out")
    assert clash.returncode == 1 and "would both be written to" in clash.stderr
    onto_input = _cli("run", "--image", twin, "--out", tmp_path, "--force")
    assert onto_input.returncode == 1 and "is an input image" in onto_input.stderr


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"info", "run", "estimate", "evaluate", "compare", "train", "noop-xclbin", "demo", "bench"}
    for name, command in commands.items():
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    backend = next(a for a in commands["evaluate"]._actions if a.dest == "backend")
    assert all(b in backend.help for b in ("cpu", "emu", "fpga", "reference"))
    cache = next(a for a in commands["bench"]._actions if a.dest == "cache")
    assert "500 MB" in cache.help
    assert parser.parse_args(["bench", "--quick"]).quick and not parser.parse_args(["bench"]).quick


def test_every_command_that_loads_a_model_defaults_to_the_builtin_one():
    parser = cli.build_parser()
    for command in ("run", "estimate", "evaluate", "compare"):
        argv = [command] + (["--image", "x.png", "--out", "o"] if command == "run" else [])
        args = parser.parse_args(argv)
        cli._use_builtin_checkpoint(args)
        assert args.builtin and args.checkpoint.endswith("checkpoint.pth.tar") and args.config.endswith("config.yml")


def test_info_reports_default_threads_and_the_board_table():
    done = _cli("info")
    assert done.returncode == 0, done.stderr
    assert re.search(r"threads: \d+ per model by default: .*CPU", done.stdout)
    assert re.search(r"width\s+768\s+192\s+384", done.stdout)
    assert re.search(r"tokens \(1 \+ patches\)\s+1201\s+129\s+1201", done.stdout)


def test_estimate_summary_has_no_empty_per_stage_header():
    done = _cli("estimate", "--summary")
    assert done.returncode == 0, done.stderr
    assert "by unit (all stages):" in done.stdout and "total:" in done.stdout
    assert not re.search(r"^stage\s", done.stdout, re.M) and "block 0" not in done.stdout
    assert "warning" not in done.stderr  # the default photo's stretch is not the user's doing
    full = _cli("estimate", "--board", "u280")
    assert re.search(r"^stage\s+unit", full.stdout, re.M) and "block 0 attn" in full.stdout


def test_evaluate_progress_names_the_backend_and_counts_images():
    done = _cli("evaluate", "--data", "synthetic:3", "--batch-size", "2", "--task", "sal")
    assert done.returncode == 0, done.stderr
    assert "evaluate cpu" in done.stderr and "2/3 images" in done.stderr and "3/3 images" in done.stderr
    assert "maxF" in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["run", "--image", "/nonexistent/x.png", "--out", "/tmp/unused"], "no such file or directory"),
    (["evaluate", "--data", "nowhere:1"], "--data must be synthetic:N"),
    (["estimate", "--image", "/nonexistent.png"], "cannot read image"),
    (["compare", "--checkpoint", "/nonexistent"], "no such checkpoint"),
    (["estimate", "--num-heads", "5"], "num_heads=5 does not divide the width 96"),
])
def test_user_errors_are_one_line_messages(argv, message):
    done = _cli(*argv)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert message in done.stderr and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
