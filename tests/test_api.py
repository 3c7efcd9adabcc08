"""The Python API: input checking, multi-task sharing, pre/post-processing, info and the CLI."""
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import edgemoe
from edgemoe import synthetic

from conftest import MAX_REL_ERR, max_rel_err


@pytest.fixture(scope="module")
def model(tiny_model):
    return edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict()))


@pytest.fixture(scope="module")
def images(tiny_model):
    return synthetic.random_images(tiny_model.cfg, 2, seed=4)


def test_properties(model):
    assert model.tasks == ["semseg", "sal", "normals"]
    assert model.backend == "cpu"
    text = str(model.config)
    for field in ("width (embed_dim)", "experts", "top-k", "MoE blocks", "semseg[5]"):
        assert field in text
    assert "edgemoe.Model(backend='cpu'" in repr(model)


def test_output_shapes(model, images):
    out = model(images, task="semseg")
    assert out.shape == (2, 5, 64, 96) and out.dtype == torch.float32
    outs = model(images, tasks=["normals", "sal"])
    assert list(outs) == ["normals", "sal"]
    assert outs["normals"].shape == (2, 3, 64, 96) and outs["sal"].shape == (2, 1, 64, 96)


def test_multi_task_equals_single_task(model, images):
    together = model(images, tasks=model.tasks)
    for task in model.tasks:
        assert torch.equal(together[task], model(images, task=task)), task


def test_batch_equals_single_images(model, images):
    batched = model(images, task="semseg")
    for i in range(images.shape[0]):
        single = model(images[i:i + 1], task="semseg")
        assert max_rel_err(single, batched[i:i + 1]) <= MAX_REL_ERR


@pytest.mark.parametrize("bad, message", [
    (lambda x: x[0], r"4-D \[B, 3, 64, 96\], got 3-D"),
    (lambda x: x[:, :2], r"shape \[B, 3, 64, 96\].*got \(2, 2, 64, 96\)"),
    (lambda x: x[:, :, :48], r"shape \[B, 3, 64, 96\].*got \(2, 3, 48, 96\)"),
    (lambda x: x.double(), r"float32.*torch.float64"),
    (lambda x: x.to("meta"), r"on the CPU, got device meta"),
    (lambda x: x.numpy(), r"torch.Tensor.*ndarray"),
    (lambda x: x[:0], r"batch size 0"),
    (lambda x: x.to_sparse(), r"dense \(strided\).*sparse"),
    (lambda x: x.to_mkldnn(), r"dense \(strided\).*mkldnn"),
    (lambda x: torch.where(x > 0, x, torch.tensor(float("nan"))), r"images contain \d+ NaN or Inf"),
    (lambda x: x.index_fill(0, torch.tensor([1]), float("inf")), r"images contain 18432 NaN or Inf"),
])
def test_bad_images(model, images, bad, message):
    """Wrong type: TypeError; wrong value: ValueError; both name the argument and what was expected."""
    with pytest.raises((ValueError, TypeError), match=message):
        model(bad(images), task="semseg")


def test_non_contiguous_input_is_fine(model, images):
    flipped = images.transpose(2, 3).contiguous().transpose(2, 3)
    assert not flipped.is_contiguous()
    assert torch.equal(model(flipped, task="sal"), model(images, task="sal"))


def test_bad_tasks(model, images):
    with pytest.raises(ValueError, match=r"unknown task 'depth'; this model has tasks \['semseg', 'sal', 'normals'\]"):
        model(images, task="depth")
    with pytest.raises(ValueError, match="exactly one"):
        model(images)
    with pytest.raises(ValueError, match="exactly one"):
        model(images, task="sal", tasks=["sal"])
    with pytest.raises(ValueError, match="empty"):
        model(images, tasks=[])


def test_backends(model, monkeypatch):
    monkeypatch.delenv("EDGEMOE_XCLBIN", raising=False)
    assert model.to("cpu") is model
    with pytest.raises(ValueError, match="backend='fpga' needs xclbin="):
        model.to("fpga")  # the Makefile's build has XRT; tests/test_fpga_noop.py runs it
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        model.to("gpu")
    assert model.backend == "cpu"


def test_thread_count_and_concurrent_calls(model, images):
    expected = model(images, task="normals")
    model.num_threads = 1
    try:
        assert model.num_threads == 1
        assert max_rel_err(model(images, task="normals"), expected) <= MAX_REL_ERR
    finally:
        model.num_threads = 2
    results = [None] * 4

    def work(i):
        results[i] = model(images, task="normals")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert max_rel_err(r, expected) <= MAX_REL_ERR


def test_preprocess_sources_agree(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)  # resized, in the model's aspect ratio
    Image.fromarray(array).save(tmp_path / "img.png")
    from_array = edgemoe.preprocess(array, (64, 96))
    assert from_array.shape == (1, 3, 64, 96) and from_array.dtype == torch.float32
    assert torch.equal(from_array, edgemoe.preprocess(Image.fromarray(array), (64, 96)))
    assert torch.equal(from_array, edgemoe.preprocess(str(tmp_path / "img.png"), (64, 96)))


def test_preprocess_normalises_like_m3vit():
    array = np.full((64, 96, 3), (255, 128, 0), dtype=np.uint8)  # no resize needed
    x = edgemoe.preprocess(array, (64, 96))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (np.array([255, 128, 0]) / 255.0 - mean) / std
    assert np.allclose(x[0, :, 10, 10].numpy(), expected, atol=1e-6)


def test_preprocess_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot read image"):
        edgemoe.preprocess(tmp_path / "missing.png", (64, 64))
    with pytest.raises(ValueError, match="uint8"):
        edgemoe.preprocess(np.zeros((8, 8, 3), np.float32), (64, 64))


def test_postprocess():
    out = torch.randn(2, 5, 8, 8, generator=torch.Generator().manual_seed(6))
    seg = edgemoe.postprocess("semseg", out)
    assert seg.shape == (2, 8, 8) and np.array_equal(seg, out.argmax(1).numpy())
    # Values, computed here from the definition (255 / (1 + e^-x)), at points known by hand too.
    sal = edgemoe.postprocess("sal", out[:, :1])
    assert sal.shape == (2, 8, 8)
    expected = 255.0 / (1.0 + np.exp(-out[:, 0].double().numpy()))
    assert np.allclose(sal, expected, rtol=0, atol=1e-4)
    known = edgemoe.postprocess("edge", torch.tensor([[[0.0, np.log(3.0), -np.log(3.0)]]]))
    assert np.allclose(known, [[127.5, 191.25, 63.75]], atol=1e-4)
    normals = edgemoe.postprocess("normals", out[0, :3])
    assert normals.shape == (8, 8, 3)
    assert np.allclose(np.linalg.norm(normals / 127.5 - 1.0, axis=-1), 1.0, atol=1e-5)
    assert np.allclose(edgemoe.postprocess("normals", torch.tensor([[[0.0]], [[-3.0]], [[4.0]]]))[0, 0],
                       [127.5, 127.5 * (1 - 0.6), 127.5 * (1 + 0.8)], atol=1e-4)
    depth = edgemoe.postprocess("depth", out[:, :1])
    assert np.array_equal(depth, out[:, 0].numpy())


def test_info():
    result = edgemoe.info()
    assert result["version"] == edgemoe.__version__
    assert result["backends"]["cpu"]["available"] and result["backends"]["emu"]["available"]
    assert result["backends"]["fpga"]["available"]  # XRT compiled in; the runtime is found only when used
    assert "devices" not in result  # no probing unless asked
    assert result["build"]["onednn"].startswith("2.")
    assert result["build"]["accelerator_kernel_config"] == "emu"
    assert result["build"]["xrt"] == "2.13.0"  # the Makefile installs Debian's libxrt-dev


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgemoe", *args], capture_output=True, text=True, timeout=300)


def test_cli_info():
    done = _cli("info")
    assert done.returncode == 0, done.stderr
    assert "cpu: available" in done.stdout and "emu: available" in done.stdout and "fpga: available" in done.stdout


def test_cli_run_writes_one_png_per_image(tmp_path, tiny_checkpoint):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 150, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    done = _cli("run", "--checkpoint", str(tiny_checkpoint), "--image", str(image), "--out", str(out),
                "--num-heads", "2", "--top-k", "2", "--image-size", "64", "96")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["photo.png"]
    assert "images/s" in done.stdout and "semseg, sal, normals" in done.stdout
    with Image.open(out / "photo.png") as png:  # input and the three tasks side by side, 4-pixel gaps
        assert png.size[0] == 4 * 96 + 3 * 4 and png.size[1] > 64 and png.mode == "RGB"
    only = _cli("run", "--checkpoint", str(tiny_checkpoint), "--image", str(image), "--out", str(tmp_path / "o2"),
                "--task", "sal", "--num-heads", "2", "--top-k", "2", "--image-size", "64", "96")
    assert only.returncode == 0, only.stderr
    with Image.open(tmp_path / "o2" / "photo.png") as png:
        assert png.size[0] == 2 * 96 + 4


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    done = _cli("run", "--checkpoint", str(tmp_path / "nope"), "--image", str(image), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "error: no such checkpoint" in done.stderr and "Traceback" not in done.stderr
