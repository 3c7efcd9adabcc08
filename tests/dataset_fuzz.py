"""Seeded mutations of small PASCAL-Context and NYUD folders in M3ViT's layouts, each read item by item
by edgemoe.data in a forked child (tests/fuzz_harness.py: address-space cap, timeout).

Run by tests/test_dataset_fuzz.py as its own process (``python dataset_fuzz.py WORKDIR SEED CASES``).
Every case must end in items of the right keys, shapes and values, or a ValueError / FileNotFoundError
that names a path inside the dataset folder. Families: image bytes, image headers, .mat labels,
.npy labels, and the folder itself (split files, links out of the root, FIFOs, folders and loops
where files belong). Prints a JSON summary as its last line."""
from __future__ import annotations

import collections
import functools
import io
import json
import os
import random
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from fuzz_harness import flip_bytes, run_in_child

CAP_BYTES = 1 << 30
TIMEOUT_S = 20.0
H, W = 24, 36
FAMILIES = ("image_bytes", "image_headers", "mat_labels", "npy_labels", "folder")
IDS = ("2008_000001", "2008_000002")


def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _jpg(path: Path, seed: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path, quality=90)


def pascal_folder(root: Path) -> None:
    from scipy.io import savemat

    (root / "ImageSets" / "Context").mkdir(parents=True)
    (root / "ImageSets" / "Context" / "val.txt").write_text("\n".join(IDS) + "\n")
    (root / "pascal-context" / "trainval").mkdir(parents=True)
    (root / "human_parts").mkdir()
    for k, i in enumerate(IDS):
        _jpg(root / "JPEGImages" / f"{i}.jpg", k)
        semseg = np.zeros((H, W), np.uint8)
        semseg[5:15, 10:20] = 15
        _png(root / "semseg" / "pascal-context" / f"{i}.png", semseg)
        _png(root / "sal_distill" / f"{i}.png", (semseg > 0).astype(np.uint8) * 200)
        _png(root / "normals_distill" / f"{i}.png", np.full((H, W, 3), (128, 128, 255), np.uint8))
        savemat(root / "pascal-context" / "trainval" / f"{i}.mat", {"LabelMap": semseg.astype(np.int32) * 3},
                do_compression=bool(k))
        head = np.zeros((H, W), np.uint8)
        head[5:9, 10:15] = 1
        parts = np.zeros((1, 1), dtype=[("part_name", "O"), ("mask", "O")])
        parts[0, 0] = ("head", head)
        objects = np.zeros((1, 1), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
        objects[0, 0] = ("person", np.array([[15]]), head, parts)
        anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
        anno[0, 0] = (f"{i}.jpg", objects)
        savemat(root / "human_parts" / f"{i}.mat", {"anno": anno}, do_compression=bool(k))


def nyud_folder(root: Path) -> None:
    (root / "gt_sets").mkdir(parents=True)
    (root / "gt_sets" / "val.txt").write_text("\n".join(IDS) + "\n")
    for k, i in enumerate(IDS):
        _jpg(root / "images" / f"{i}.jpg", k)
        _png(root / "segmentation" / f"{i}.png", np.full((H, W), 3 + k, np.uint8))
        for name, array in (("depth", np.full((H, W), 2.5, np.float32)),
                            ("normals", np.tile(np.array([0, 0, 1], np.float32), (H, W, 1))),
                            ("edge", np.zeros((H, W), np.float32))):
            (root / name).mkdir(exist_ok=True)
            np.save(root / name / f"{i}.npy", array)


# --- mutations: each edits the folder in place ---------------------------------------------------------

def _files(root: Path, suffixes) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix in suffixes)


def _damaged(raw: bytes, rng: random.Random) -> bytes:
    """The bytes with a few flipped, or cut short."""
    return flip_bytes(raw, rng, 12) if rng.random() < 0.5 else raw[:rng.randrange(len(raw))]


def image_bytes(root: Path, rng: random.Random) -> None:
    path = rng.choice(_files(root, {".jpg", ".png"}))
    raw = path.read_bytes()
    if rng.random() < 2 / 3:
        path.write_bytes(_damaged(raw, rng))
    else:
        path.write_bytes(raw + os.urandom(rng.randint(1, 4096)))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=None)
def _bomb_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (9000, 5000)).save(buffer, format="PNG", optimize=True)  # 45 M pixels in ~50 KB
    return buffer.getvalue()


def image_headers(root: Path, rng: random.Random) -> None:
    """Declared sizes and modes a decoder trusts: PNG dimensions (CRC kept valid), bombs, odd modes."""
    from PIL import Image

    pngs = _files(root, {".png"})
    path = rng.choice(pngs)
    choice = rng.randrange(4)
    if choice == 0:  # IHDR with other dimensions, CRC recomputed
        raw = bytearray(path.read_bytes())
        w, h = rng.choice([(0, 0), (1, 1), (W, H + 1), (2**31 - 1, 1), (100_000, 100_000), (W * 2, H * 2)])
        ihdr = struct.pack(">II", w, h) + bytes(raw[24:29])
        path.write_bytes(bytes(raw[:8]) + _png_chunk(b"IHDR", ihdr) + bytes(raw[33:]))
    elif choice == 1:  # a decompression bomb: a small file of a huge image
        path.write_bytes(_bomb_png())
    elif choice == 2:  # another mode or size
        mode = rng.choice(["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"])
        size = rng.choice([(W, H), (H, W), (1, 1), (W + 3, H)])
        try:
            Image.new(mode, size, color=rng.randint(0, 255) if mode != "F" else 1.5).save(path.with_suffix(".tmp.png"))
            path.with_suffix(".tmp.png").rename(path)
        except (OSError, ValueError):
            path.write_bytes(b"")
    else:  # a JPEG header that declares a huge image
        jpg = rng.choice(_files(root, {".jpg"}))
        raw = bytearray(jpg.read_bytes())
        at = raw.find(b"\xff\xc0")
        if at > 0:
            struct.pack_into(">HH", raw, at + 5, rng.choice([0, 1, 65535]), rng.choice([0, 1, 65535]))
        jpg.write_bytes(bytes(raw))


def _nested_cells(depth: int) -> bytes:
    def element(mtype, payload):
        return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)

    def head(cls, name, body):
        h = element(6, struct.pack("<II", cls, 0)) + element(5, struct.pack("<2i", 1, 1)) + element(1, name)
        return struct.pack("<II", 14, len(h) + body) + h

    inner = element(9, struct.pack("<d", 15.0))
    inner = head(6, b"", len(inner)) + inner
    heads, size = [], len(inner)
    for level in range(depth):
        h = head(1, b"anno" if level == depth - 1 else b"", size)
        heads.append(h)
        size += len(h)
    return b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM" \
        + b"".join(reversed(heads)) + inner


def mat_labels(root: Path, rng: random.Random) -> None:
    mats = _files(root, {".mat"})
    if not mats:
        return image_bytes(root, rng)
    path = rng.choice(mats)
    raw = path.read_bytes()
    choice = rng.randrange(1, 6)
    if choice == 1:
        path.write_bytes(_damaged(raw, rng))
    elif choice == 2:
        path.write_bytes(_nested_cells(rng.choice([3, 9, 50, 10_000])))
    elif choice == 3:  # a 4-byte field of the first array's header set to an edge value
        b = bytearray(raw)
        at = 128 + 8 * rng.randrange(1, 10)
        if at + 4 <= len(b):
            struct.pack_into("<i", b, at, rng.choice([-1, 0, 1, 2**31 - 1, 100_000, 14, 15]))
        path.write_bytes(bytes(b))
    elif choice == 4:  # other contents under the right name
        from scipy.io import savemat

        name = "LabelMap" if "trainval" in str(path) else "anno"
        value = rng.choice(_wrong_label_arrays() + ["text", {"objects": np.zeros((0, 0))}])
        buffer = io.BytesIO()
        v4 = isinstance(value, np.ndarray) and value.ndim == 2 and rng.random() < 0.3
        savemat(buffer, {name: value}, format="4" if v4 else "5")
        path.write_bytes(buffer.getvalue())
    else:  # a compressed variable: corrupt, or inflating past the limit
        stream = zlib.compress(b"\0" * rng.choice([64, 200 << 20]), 1)
        if rng.random() < 0.5:
            stream = stream[:len(stream) // 2]
        path.write_bytes(raw[:128] + struct.pack("<II", 15, len(stream)) + stream)


def _wrong_label_arrays() -> list:
    """Label arrays of the right name but the wrong shape, dtype or values, for both label formats."""
    return [np.zeros((H, W)), np.full((H, W), np.nan, np.float32), np.full((H, W), np.inf), np.zeros((H, W), bool),
            np.ones((H, W), np.complex64), np.zeros((3, 3)), np.zeros((H, W, 2)), np.zeros((H, W, 3), np.int8),
            np.zeros((0, 0)), np.zeros((0,))]


def npy_labels(root: Path, rng: random.Random) -> None:
    npys = _files(root, {".npy"})
    if not npys:
        return mat_labels(root, rng)
    path = rng.choice(npys)
    raw = path.read_bytes()
    choice = rng.randrange(1, 4)
    if choice == 1:
        path.write_bytes(_damaged(raw, rng))
    elif choice == 2:  # the header rewritten: shape, dtype, order
        header_end = raw.index(b"\n") + 1
        header = raw[10:header_end].decode("latin1")
        header = header.replace(f"({H}, {W}", rng.choice(["(100000, 100000", f"({W}, {H}", f"({H}, {W}, 7", "(-1, 3"]))
        header = header.replace("'<f4'", rng.choice(["'<f4'", "'<c8'", "'|O'", "'<f8'", "'>f4'", "'<U3'"]))
        header = header.replace("False", rng.choice(["False", "True"]))
        body = header.encode("latin1")
        path.write_bytes(raw[:8] + struct.pack("<H", len(body)) + body + raw[header_end:])
    else:  # other arrays
        value = rng.choice(_wrong_label_arrays() + [np.array([{"a": 1}]), np.zeros((H, W), ">f8")])
        with open(path, "wb") as f:
            np.save(f, value, allow_pickle=True)


def folder(root: Path, rng: random.Random) -> None:
    files = _files(root, {".jpg", ".png", ".mat", ".npy"})
    split = next(root.glob("**/val.txt"))
    choice = rng.randrange(8)
    if choice == 0:
        split.write_bytes(rng.choice([b"", b"\xff\xfe\0binary", b"../../etc/passwd\n", b"/etc/hostname\n",
                                      b"2008_000001\0x\n", b"a" * 5000 + b"\n", b".\n", b"..\n", b"\\\\x\n",
                                      b"2008_000001\r\n2008_000002\r\n", b"missing\n", b" 2008_000001 \n"]))
    elif choice == 1:  # a link out of the root, a dangling one, a loop
        path = rng.choice(files)
        path.unlink()
        outside = root.parent / "outside.bin"
        outside.write_bytes(b"secret")
        path.symlink_to(rng.choice([outside, root / "nowhere", path]))
    elif choice == 2:
        path = rng.choice(files)
        path.unlink()
        os.mkfifo(path)
    elif choice == 3:
        path = rng.choice(files)
        path.unlink()
        path.mkdir()
    elif choice == 4:
        rng.choice(files).unlink()
    elif choice == 5:  # a whole label folder replaced by a link out of the root
        sub = rng.choice(files).parent
        shutil.rmtree(sub)
        (root.parent / "elsewhere").mkdir(exist_ok=True)
        sub.symlink_to(root.parent / "elsewhere")
    elif choice == 6:  # the split file itself a FIFO or a link
        split.unlink()
        if rng.random() < 0.5:
            os.mkfifo(split)
        else:
            split.symlink_to(Path("/etc/hostname"))
    else:
        path = rng.choice(files)
        path.write_bytes(b"")


# --- one case -----------------------------------------------------------------------------------------

def _read_all(kind: str, root: Path) -> dict:
    from edgemoe import data

    try:
        dataset = (data.PascalContext if kind == "pascal" else data.NYUD)(root, "val", (H, W))
        for index in range(len(dataset)):
            item = dataset[index]
            for task in dataset.tasks:
                value = item[task]
                if tuple(value.shape[-2:]) != (H, W) or (value.dtype.is_floating_point and not value.isfinite().all()):
                    return {"outcome": "bad_item", "task": task, "shape": list(value.shape)}
            if tuple(item["image"].shape) != (3, H, W) or not item["image"].isfinite().all():
                return {"outcome": "bad_item", "task": "image"}
    except (ValueError, FileNotFoundError) as exc:
        named = str(root) in str(exc)
        return {"outcome": "refused" if named else "unnamed", "error": type(exc).__name__, "message": str(exc)[:300]}
    return {"outcome": "loaded"}


def main(workdir: str, seed: int, cases: int) -> dict:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    # everything a reader imports, imported once before forking (not once per child)
    import edgemoe.data  # noqa: F401
    import PIL.Image  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401
    import PIL.JpegImagePlugin  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import skimage.morphology  # noqa: F401

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pristine = {"pascal": workdir / "pristine" / "pascal", "nyud": workdir / "pristine" / "nyud"}
    pascal_folder(pristine["pascal"])
    nyud_folder(pristine["nyud"])
    PIL.Image.init()  # every image plugin, as a file PIL cannot identify would load them
    for kind, root in pristine.items():  # warm: the pristine folders read, in the parent, before any fork
        assert _read_all(kind, root) == {"outcome": "loaded"}, kind
    outcomes, families, failures = collections.Counter(), collections.Counter(), []
    start = time.monotonic()
    for index in range(cases):
        family = FAMILIES[index % len(FAMILIES)]
        kind = ("pascal", "nyud")[(index // len(FAMILIES)) % 2]
        rng = random.Random(seed * 1_000_003 + index)
        case_dir = workdir / f"case{index}"
        root = case_dir / kind
        shutil.copytree(pristine[kind], root)
        if family == "npy_labels" and kind == "pascal":
            mat_labels(root, rng)
        else:
            globals()[family](root, rng)
        result = run_in_child(lambda: _read_all(kind, root), TIMEOUT_S, CAP_BYTES)
        outcomes[result["outcome"]] += 1
        families[(family, result["outcome"])] += 1
        if result["outcome"] not in ("refused", "loaded"):
            failures.append({"case": index, "family": family, "kind": kind, **result})
        shutil.rmtree(case_dir)
    return {"cases": cases, "seconds": round(time.monotonic() - start, 1), "outcomes": dict(outcomes),
            "families": {f"{f}:{o}": n for (f, o), n in sorted(families.items())}, "failures": failures}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
