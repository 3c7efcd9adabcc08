"""The synthetic multi-task scenes (determinism, labels that agree with each other) and the readers for
M3ViT's PASCAL_MT and NYUD_MT folder layouts, on tiny folders written here."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from edgemoe import data
from edgemoe.imaging import preprocess


def test_scenes_are_deterministic_per_split_and_index():
    a, b = data.synthetic_scene("test", 7), data.synthetic_scene("test", 7)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["pixels"], data.synthetic_scene("test", 8)["pixels"])
    assert not np.array_equal(a["pixels"], data.synthetic_scene("train", 7)["pixels"])
    assert not np.array_equal(a["pixels"], data.synthetic_scene("val", 7)["pixels"])


@pytest.mark.parametrize("index", range(12))
def test_labels_agree(index):
    s = data.synthetic_scene("train", index)
    H, W = 128, 256
    assert s["pixels"].shape == (H, W, 3) and s["pixels"].dtype == np.uint8
    semseg, parts = s["semseg"], s["human_parts"]
    assert semseg.min() >= 0 and semseg.max() < len(data.SYNTHETIC_CLASSES)
    assert np.array_equal((parts + 1) // 2, semseg)  # parts 2c-1 (top), 2c (side) refine class c
    assert np.array_equal(s["sal"], (semseg > 0).astype(np.float32))
    n = s["normals"]
    assert np.allclose(np.linalg.norm(n, axis=0), 1, atol=1e-5)
    assert np.all(n[1][semseg == 0] >= 0) and np.all(n[2] >= -1e-6)  # background: wall or floor; nothing faces away
    depth = s["depth"]
    assert depth.min() > 0 and depth.max() <= 9.0
    # an object is nearer than the background right beside it
    assert np.all(depth[semseg > 0] < 9.0)
    # edges: every change of object or part between horizontal / vertical neighbours is an edge pixel
    change = np.zeros((H, W), bool)
    change[:, :-1] |= parts[:, :-1] != parts[:, 1:]
    change[:-1, :] |= parts[:-1, :] != parts[1:, :]
    assert np.all(s["edge"][change] == 1)
    assert set(np.unique(s["edge"])) <= {0.0, 1.0}


def test_every_class_and_part_occurs():
    seen_c, seen_p = set(), set()
    for i in range(40):
        s = data.synthetic_scene("train", i)
        seen_c |= set(np.unique(s["semseg"]).tolist())
        seen_p |= set(np.unique(s["human_parts"]).tolist())
    assert seen_c == set(range(len(data.SYNTHETIC_CLASSES)))
    assert seen_p == set(range(len(data.SYNTHETIC_PARTS)))


def test_dataset_items():
    ds = data.SyntheticScenes("val", 3, (64, 128))
    assert len(ds) == 3 and "val" in repr(ds)
    item = ds[2]
    assert item["image"].shape == (3, 64, 128) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"], preprocess(item["pixels"].numpy(), (64, 128))[0], atol=1e-6)
    assert item["semseg"].dtype == torch.int64 and item["normals"].shape == (3, 64, 128)
    with pytest.raises(IndexError):
        ds[3]


@pytest.mark.parametrize("call, match", [
    (lambda: data.synthetic_scene("holdout", 0), "split"),
    (lambda: data.synthetic_scene("test", -1), "index"),
    (lambda: data.synthetic_scene("test", 1.5), "index"),
    (lambda: data.synthetic_scene("test", 0, (8, 8)), "image_size"),
    (lambda: data.SyntheticScenes("test", 0), "size"),
    (lambda: data.open_dataset("imagenet:/x", (64, 64)), "synthetic:N"),
    (lambda: data.open_dataset("synthetic:many", (64, 64)), "count"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _jpg(path, H, W, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, quality=95)


def _pascal_folder(root, H=40, W=60):
    from scipy.io import savemat

    _jpg(root / "JPEGImages" / "2008_000001.jpg", H, W)
    (root / "ImageSets" / "Context").mkdir(parents=True)
    (root / "ImageSets" / "Context" / "val.txt").write_text("2008_000001\n")
    semseg = np.zeros((H, W), np.uint8)
    semseg[10:30, 20:40] = 15
    semseg[0, :] = 255
    (root / "semseg" / "pascal-context").mkdir(parents=True)
    Image.fromarray(semseg).save(root / "semseg" / "pascal-context" / "2008_000001.png")
    sal = np.zeros((H, W), np.uint8)
    sal[10:30, 20:40] = 200
    (root / "sal_distill").mkdir()
    Image.fromarray(sal).save(root / "sal_distill" / "2008_000001.png")
    normals = np.zeros((H, W, 3), np.uint8)
    normals[...] = (128, 128, 255)  # (0, 0, 1)
    (root / "normals_distill").mkdir()
    Image.fromarray(normals).save(root / "normals_distill" / "2008_000001.png")
    label_map = np.zeros((H, W), np.int32)
    label_map[10:30, 20:40] = 7
    (root / "pascal-context" / "trainval").mkdir(parents=True)
    savemat(root / "pascal-context" / "trainval" / "2008_000001.mat", {"LabelMap": label_map})
    # human parts: one person (class 15) with a head and a left foot
    head, foot = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    head[10:15, 25:35] = 1
    foot[25:30, 20:25] = 1
    parts = np.zeros((1, 2), dtype=[("part_name", "O"), ("mask", "O")])
    parts[0, 0] = ("head", head)
    parts[0, 1] = ("lfoot", foot)
    objects = np.zeros((1, 2), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    objects[0, 0] = ("person", np.array([[15]]), (head | foot), parts)
    objects[0, 1] = ("dog", np.array([[12]]), np.zeros((H, W), np.uint8), np.zeros((0, 0)))
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = ("2008_000001.jpg", objects)
    (root / "human_parts").mkdir()
    savemat(root / "human_parts" / "2008_000001.mat", {"anno": anno})


def test_pascal_reader(tmp_path):
    _pascal_folder(tmp_path)
    ds = data.PascalContext(tmp_path, "val", image_size=(40, 60))
    assert len(ds) == 1
    item = ds[0]
    assert item["image"].shape == (3, 40, 60)
    assert item["semseg"][20, 30] == 15 and item["semseg"][0, 5] == 255 and item["semseg"][35, 5] == 0
    assert item["sal"][20, 30] == 1 and item["sal"][5, 5] == 0
    assert torch.allclose(item["normals"][:, 5, 5], torch.tensor([0.0, 0.0, 1.0]), atol=0.01)
    parts = item["human_parts"]
    assert parts[12, 30] == 1 and parts[27, 22] == 6 and parts[35, 50] == 0
    edge = item["edge"]
    assert edge.sum() > 0 and edge[20, 30] == 0 and edge[:, 19:21].sum() + edge[:, 39:41].sum() > 0
    resized = data.PascalContext(tmp_path, "val", image_size=(32, 32), tasks=["semseg"])[0]
    assert resized["semseg"].shape == (32, 32) and "sal" not in resized
    with pytest.raises(ValueError, match="depth"):
        data.PascalContext(tmp_path, "val", tasks=["depth"])
    with pytest.raises(FileNotFoundError, match="train.txt"):
        data.PascalContext(tmp_path, "train")


def test_pascal_image_without_parts_is_ignored(tmp_path):
    _pascal_folder(tmp_path)
    (tmp_path / "human_parts" / "2008_000001.mat").unlink()
    assert (data.PascalContext(tmp_path, "val", (40, 60), ["human_parts"])[0]["human_parts"] == 255).all()


def test_nyud_reader(tmp_path):
    H, W = 24, 32
    _jpg(tmp_path / "images" / "0001.jpg", H, W)
    (tmp_path / "gt_sets").mkdir()
    (tmp_path / "gt_sets" / "val.txt").write_text("0001\n")
    seg = np.zeros((H, W), np.uint8)
    seg[:, 16:] = 40
    seg[:, 8:16] = 1
    (tmp_path / "segmentation").mkdir()
    Image.fromarray(seg).save(tmp_path / "segmentation" / "0001.png")
    depth = np.full((H, W), 2.5, np.float32)
    depth[0, 0] = 0
    normals = np.zeros((H, W, 3), np.float32)
    normals[..., 1] = 2.0
    normals[1, 1] = 0
    edge = np.zeros((H, W), np.float32)
    edge[:, 16] = 1
    for name, arr in (("depth", depth), ("normals", normals), ("edge", edge)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "0001.npy", arr)
    item = data.NYUD(tmp_path, "val", image_size=(H, W))[0]
    assert item["semseg"][0, 0] == 255 and item["semseg"][0, 10] == 0 and item["semseg"][0, 20] == 39
    assert item["depth"][0, 0] == 0 and item["depth"][5, 5] == pytest.approx(2.5)
    assert torch.allclose(item["normals"][:, 5, 5], torch.tensor([0.0, 1.0, 0.0]))
    assert (item["normals"][:, 1, 1] == 255).all()
    assert item["edge"][3, 16] == 1 and item["edge"][3, 3] == 0
    ds = data.open_dataset(f"nyud:{tmp_path}", (H, W))
    assert isinstance(ds, data.NYUD) and len(ds) == 1


def _nyud_image(root, H=8, W=8):
    """A NYUD_MT folder with one image, x, in the val split; returns its size."""
    _jpg(root / "images" / "x.jpg", H, W)
    (root / "gt_sets").mkdir()
    (root / "gt_sets" / "val.txt").write_text("x\n")
    return H, W


def test_nyud_reader_never_unpickles(tmp_path):
    H, W = _nyud_image(tmp_path)
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "x.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        data.NYUD(tmp_path, "val", (H, W), ["depth"])[0]


@pytest.mark.parametrize("damage, match", [
    (lambda root: (root / "human_parts" / "2008_000001.mat").write_bytes(b"MATLAB 5.0 garbage" * 10), "human-parts"),
    (lambda root: (root / "JPEGImages" / "2008_000001.jpg").write_bytes(b"\xff\xd8 not a jpeg"), "image"),
    (lambda root: (root / "pascal-context" / "trainval" / "2008_000001.mat").write_bytes(b"\x00" * 200), "label map"),
    (lambda root: Image.fromarray(np.zeros((3, 3), np.uint8)).save(root / "sal_distill" / "2008_000001.png"), "shape"),
])
def test_hostile_pascal_files_raise_value_errors(tmp_path, damage, match):
    _pascal_folder(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=match):
        data.PascalContext(tmp_path, "val", (40, 60))[0]


# --- issue 20, classes 5 and 6: dataset folders read only regular files inside their root, and check
# declared sizes before decoding -----------------------------------------------------------------------

def test_a_fifo_where_an_image_belongs_is_refused_not_waited_on(tmp_path):
    _pascal_folder(tmp_path)
    image = tmp_path / "JPEGImages" / "2008_000001.jpg"
    image.unlink()
    os.mkfifo(image)  # opening it for reading would block forever
    with pytest.raises(ValueError, match="not a regular file"):
        data.PascalContext(tmp_path, "val", (40, 60))[0]


def test_links_and_split_entries_outside_the_root_are_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "pascal"
    _pascal_folder(root)
    _jpg(outside / "secret.jpg", 40, 60)
    image = root / "JPEGImages" / "2008_000001.jpg"
    image.unlink()
    image.symlink_to(outside / "secret.jpg")
    with pytest.raises(ValueError, match="outside the dataset folder"):
        data.PascalContext(root, "val", (40, 60))[0]
    for entry in (str(outside / "secret"), "../../elsewhere/secret"):
        (root / "ImageSets" / "Context" / "val.txt").write_text(entry + "\n")
        with pytest.raises(ValueError, match="not an image id"):
            data.PascalContext(root, "val", (40, 60))
    (root / "ImageSets" / "Context" / "val.txt").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not text"):
        data.PascalContext(root, "val", (40, 60))


def test_image_headers_are_checked_before_decoding(tmp_path):
    _pascal_folder(tmp_path)
    # 9000 x 5000 declared in a small file: refused from the header, not decoded (45 M pixels)
    Image.new("L", (9000, 5000)).save(tmp_path / "sal_distill" / "2008_000001.png", optimize=True)
    assert (tmp_path / "sal_distill" / "2008_000001.png").stat().st_size < 200_000
    with pytest.raises(ValueError, match="declares 9000 x 5000 pixels"):
        data.PascalContext(tmp_path, "val", (40, 60), ["sal"])[0]


def test_npy_headers_must_match_the_file(tmp_path):
    H, W = _nyud_image(tmp_path)
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "x.npy", np.zeros((H, W), np.float32))
    raw = (tmp_path / "depth" / "x.npy").read_bytes()
    # the same file with a header claiming 100,000 x 100,000 floats (40 GB)
    (tmp_path / "depth" / "x.npy").write_bytes(raw.replace(b"(8, 8)", b"(100000, 100000)").ljust(len(raw), b" "))
    with pytest.raises(ValueError, match="header declares"):
        data.NYUD(tmp_path, "val", (H, W), ["depth"])[0]


def test_out_of_range_class_ids_are_named_where_read(tmp_path):
    _pascal_folder(tmp_path)
    label = np.full((40, 60), 60000, np.uint16)  # a 16-bit PNG
    Image.fromarray(label).save(tmp_path / "semseg" / "pascal-context" / "2008_000001.png")
    with pytest.raises(ValueError, match="class ids from") as refused:
        data.PascalContext(tmp_path, "val", (40, 60), ["semseg"])[0]
    assert "2008_000001" in str(refused.value)


def test_complex_and_nan_arrays_are_refused(tmp_path):
    H, W = _nyud_image(tmp_path)
    (tmp_path / "depth").mkdir()
    (tmp_path / "edge").mkdir()
    np.save(tmp_path / "depth" / "x.npy", np.ones((H, W), np.complex64))
    with pytest.raises(ValueError, match="real numeric"):
        data.NYUD(tmp_path, "val", (H, W), ["depth"])[0]
    np.save(tmp_path / "edge" / "x.npy", np.full((H, W), np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        data.NYUD(tmp_path, "val", (H, W), ["edge"])[0]
