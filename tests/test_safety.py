"""Hostile and careless inputs: every finding of the reliability audit (issue 7) as a regression test.

Contract under test: a checkpoint either loads correctly or raises CheckpointError /
UnsafeCheckpointError naming the file (and key); a bad argument raises ValueError / TypeError
naming the argument; nothing crashes the interpreter, corrupts memory, writes a file or changes
global state."""
import collections
import io
import os
import pickle
import struct
import threading
import warnings
import zipfile

import pytest
import torch
import yaml

import edgemoe
from edgemoe import CheckpointError, InputRangeWarning, UnsafeCheckpointError, synthetic
from edgemoe.reference import M3ViT

from conftest import MAX_REL_ERR, max_rel_err, tiny_config

TINY = dict(num_heads=2, top_k=2, image_size=(64, 96))
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture(scope="module")
def state(tiny_model):
    return dict(tiny_model.state_dict())


@pytest.fixture(scope="module")
def cpu_model(tiny_model, state):
    return edgemoe.Model(tiny_model.cfg, state)


def _save(path, state, **kwargs):
    torch.save({"state_dict": collections.OrderedDict(("module." + k, v) for k, v in state.items())}, path, **kwargs)
    return path


# --- 1. non-finite and overflowing values ------------------------------------------------------------

@pytest.mark.parametrize("backend", ["cpu", "emu"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_raise(tiny_model, state, backend, value):
    model = edgemoe.Model(tiny_model.cfg, state, backend)
    x = synthetic.pixel_images(tiny_model.cfg, 1)
    x[0, 1, 5, 7] = value
    with pytest.raises(ValueError, match=r"images contain 1 NaN or Inf values"):
        model(x, task="semseg")
    with pytest.raises(ValueError, match=r"images contain 1 NaN or Inf values"):
        model.features(x, "semseg")


def test_pixels_that_overflow_float32_raise_instead_of_corrupting_the_heap(cpu_model, tiny_model):
    """3e38 is finite, but the patch embedding overflows to Inf, LayerNorm makes NaN, and top-k used
    to pick no expert and index -1 (munmap_chunk(): invalid pointer)."""
    x = torch.full((1, 3, 64, 96), 3e38)
    with pytest.raises(ValueError, match=r"images: the backbone overflowed float32"):
        cpu_model(x, task="semseg")
    with pytest.raises(ValueError, match=r"images: the backbone overflowed float32"):
        cpu_model.features(x, "semseg")
    # the model still works afterwards
    y = synthetic.random_images(tiny_model.cfg, 1)
    assert torch.isfinite(cpu_model(y, task="semseg")).all()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("key", ["backbone.blocks.1.mlp.gate.0.w_gate", "decoders.sal.conv_2.weight",
                                 "backbone.pos_embed"])
def test_non_finite_weights_are_refused_at_load(tmp_path, state, key, value):
    bad = dict(state)
    bad[key] = state[key].clone()
    bad[key].view(-1)[3] = value
    path = _save(tmp_path / "nan.pth", bad)
    with pytest.raises(CheckpointError, match=rf"'{key}' holds 1 NaN or Inf values \(in .*nan\.pth\)"):
        edgemoe.Model.from_checkpoint(path, **TINY)
    with pytest.raises(CheckpointError, match=rf"'{key}' holds 1 NaN or Inf"):
        edgemoe.Model(synthetic.preset("tiny"), bad)


# --- 2. shapes a checkpoint controls -----------------------------------------------------------------

ODD_SHAPES = {
    # head channels not a multiple of 16, and task outputs wider than the head (buffers were sized by
    # head channels but written in 16-channel blocks)
    "head-channels-20": tiny_config(head_channels=20),
    "head-channels-8-outputs-40": tiny_config(head_channels=8, tasks=(("semseg", 40), ("sal", 1), ("normals", 3))),
    # more than 256 experts (route_tokens had a float[256] on the stack)
    "experts-300": tiny_config(num_experts=300, expert_hidden=8, top_k=3),
    "head-dim-20": tiny_config(embed_dim=60, num_heads=3, mlp_hidden=64, expert_hidden=32),
    "single-block": tiny_config(depth=1, moe_blocks=()),
    "all-moe": tiny_config(depth=2, moe_blocks=(0, 1), mlp_hidden=0),
}


@pytest.mark.parametrize("name", sorted(ODD_SHAPES))
def test_unusual_valid_shapes_run_correctly(tmp_path, name):
    cfg = ODD_SHAPES[name]
    if not cfg.moe_blocks:
        cfg = tiny_config(**{**cfg.__dict__, "num_experts": 0, "expert_hidden": 0, "top_k": 0, "gate": "shared",
                             "gate_num_tasks": 0})
    ref = synthetic.seeded_model(cfg, 3)
    path = synthetic.save_m3vit_checkpoint(ref, tmp_path / "ckpt", world_size=1)
    model = edgemoe.Model.from_checkpoint(path, num_heads=cfg.num_heads, top_k=cfg.top_k or None,
                                          image_size=cfg.image_size)
    assert model.config == cfg
    x = synthetic.random_images(cfg, 2, seed=5)
    for task in cfg.task_names:
        if cfg.moe_blocks:  # the bound holds where fp32 routing is not a near-tie (conftest)
            assert ref.near_ties(x, task) == 0, (name, task)
        with torch.no_grad():
            expected = ref(x, task)
        assert max_rel_err(model(x, task=task), expected) <= MAX_REL_ERR, task


@pytest.mark.parametrize("patch", [8, 32])
def test_patch_sizes_other_than_16_are_refused(tmp_path, state, patch):
    bad = dict(state)
    bad["backbone.patch_embed.proj.weight"] = torch.zeros(64, 3, patch, patch)
    with pytest.raises(CheckpointError, match=rf"backbone\.patch_embed\.proj\.weight has {patch}x{patch} patches.*"
                                              r"supported patch size is 16"):
        edgemoe.Model.from_checkpoint(_save(tmp_path / "p.pth", bad), **TINY)


# --- 3. storages shorter or longer than their records --------------------------------------------------

def _rewrite_zip(src, dst, edit):
    """Copy a torch zip, letting edit(name, data) -> data change records (CRCs stay valid)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info)))
    return dst


def _storage_records(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.getinfo(n).file_size for n in z.namelist() if "/data/" in n}


def test_shortened_record_is_refused(tmp_path, state):
    src = _save(tmp_path / "ok.pth", state)
    victim = max(_storage_records(src).items(), key=lambda kv: kv[1])[0]
    dst = _rewrite_zip(src, tmp_path / "short.pth", lambda n, d: d[: len(d) // 2] if n == victim else d)
    with pytest.raises(CheckpointError, match=r"short\.pth.*holds \d+ bytes but the checkpoint declares \d+"):
        edgemoe.Model.from_checkpoint(dst, **TINY)


def test_swapped_records_are_refused(tmp_path, state):
    src = _save(tmp_path / "ok.pth", state)
    sizes = _storage_records(src)
    a, b = sorted(sizes, key=sizes.get)[0], sorted(sizes, key=sizes.get)[-1]
    with zipfile.ZipFile(src) as z:
        data = {a: z.read(b), b: z.read(a)}
    dst = _rewrite_zip(src, tmp_path / "swapped.pth", lambda n, d: data.get(n, d))
    with pytest.raises(CheckpointError, match=r"(shortened or swapped)"):
        edgemoe.Model.from_checkpoint(dst, **TINY)


# --- 4. the legacy format: no state on globals, no source checks, no files --------------------------------

def _legacy_file(path, main_pickle: bytes, storage_keys=(), storages=b""):
    head = b"".join(pickle.dumps(v, protocol=2) for v in
                    (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}))
    path.write_bytes(head + main_pickle + pickle.dumps(list(storage_keys), protocol=2) + storages)
    return path


def _build_on_global(module, name, attribute, value):
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"}" + b"X" + struct.pack("<I", len(attribute))
            + attribute.encode() + b"X" + struct.pack("<I", len(value)) + value.encode() + b"sb.")


@pytest.mark.parametrize("module, name, attribute", [
    ("torch._utils", "_rebuild_tensor_v2", "__qualname__"),
    ("torch._utils", "_rebuild_tensor_v2", "dump_patches"),
    ("collections", "OrderedDict", "__name__"),
])
def test_legacy_build_cannot_change_allow_listed_globals(tmp_path, module, name, attribute):
    target = getattr(__import__(module, fromlist=[name]), name)
    before = getattr(target, attribute, None)
    path = _legacy_file(tmp_path / "build.pth", _build_on_global(module, name, attribute, "hijacked"))
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to set state"):
        edgemoe.Model.from_checkpoint(path)
    assert getattr(target, attribute, None) == before
    buf = io.BytesIO()
    torch.save(torch.ones(2), buf)  # torch.save still works in this process
    assert torch.equal(torch.load(io.BytesIO(buf.getvalue())), torch.ones(2))


def test_legacy_module_source_check_never_writes_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # persistent id ('module', <a torch global>, 'evil.py', 'line one\nline two\n')
    pid = (b"\x80\x02(X\x06\x00\x00\x00modulectorch._utils\n_rebuild_tensor_v2\n"
           b"X\x07\x00\x00\x00evil.pyX\x12\x00\x00\x00line one\nline two\ntQ.")
    path = _legacy_file(tmp_path / "module.pth", pid)
    with pytest.raises(UnsafeCheckpointError, match=r"whole torch\.nn\.Module"):
        edgemoe.Model.from_checkpoint(path)
    assert sorted(os.listdir(tmp_path)) == ["module.pth"]


def test_legacy_format_still_loads(tmp_path, state, cpu_model, tiny_model):
    path = _save(tmp_path / "legacy.pth", state, _use_new_zipfile_serialization=False)
    model = edgemoe.Model.from_checkpoint(path, **TINY)
    x = synthetic.random_images(tiny_model.cfg, 1)
    assert torch.equal(model(x, task="sal"), cpu_model(x, task="sal"))


def test_legacy_storage_longer_than_the_file_is_refused_before_allocating(tmp_path, state):
    path = _save(tmp_path / "legacy.pth", state, _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    data = data[: len(data) - 1000]
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"legacy\.pth.*truncated"):
        edgemoe.Model.from_checkpoint(path, **TINY)


# --- 5. small files that ask for a lot of memory ------------------------------------------------------------

@pytest.mark.parametrize("elements", [2 ** 28, 2 ** 40])
def test_stride_zero_tensor_in_an_unused_key_is_refused_without_allocating(tmp_path, state, elements):
    bad = dict(state)
    bad["unused.expanded"] = torch.zeros(1).expand(elements)
    path = _save(tmp_path / "expanded.pth", bad)
    assert path.stat().st_size < 2 ** 21
    with pytest.raises(CheckpointError, match=rf"needs {elements} elements but its storage holds 1"):
        edgemoe.Model.from_checkpoint(path, **TINY)


def test_used_tensors_aliasing_one_storage_are_refused(tmp_path, state):
    """Bound: the float32 model is at most 2x the bytes of the storages it comes from (float16 checkpoints
    double), so a file stays within about twice its size however its tensors alias one another."""
    biggest = max(t.numel() for t in state.values())
    shared = torch.randn(biggest)
    bad = {k: shared[: t.numel()].view(t.shape) for k, t in state.items()}
    path = _save(tmp_path / "alias.pth", bad)
    assert path.stat().st_size < 4 * biggest + 200_000
    with pytest.raises(CheckpointError, match=r"declare \d+ elements but share only \d+ bytes of storage"):
        edgemoe.Model.from_checkpoint(path, **TINY)
    # views of one storage that add up to no more than it holds (e.g. torch.split) are fine
    flat = torch.cat([t.reshape(-1) for t in state.values()])
    views = dict(zip(state, (p.view(t.shape) for p, t in zip(flat.split([t.numel() for t in state.values()]),
                                                                 state.values()))))
    edgemoe.Model.from_checkpoint(_save(tmp_path / "split.pth", views), **TINY)


def test_unused_keys_are_never_converted(tmp_path, state, monkeypatch):
    bad = dict(state)
    bad["optimizer_like.buffer"] = torch.zeros(1000, dtype=torch.float64)
    converted = []
    original = torch.Tensor.to

    def spy(self, *args, **kwargs):
        converted.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    path = _save(tmp_path / "extra.pth", bad)
    monkeypatch.setattr(torch.Tensor, "to", spy)
    edgemoe.Model.from_checkpoint(path, **TINY)
    assert (1000,) not in converted and len(converted) == len(edgemoe._C.required_weights(
        synthetic.preset("tiny").to_native()))


# --- 6. every failure is edgemoe's exception, naming file, key or argument -------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("backbone.blocks.1.mlp.gate.0.w_gate", torch.zeros(64), r"'backbone\.blocks\.1\.mlp\.gate\.0\.w_gate' has shape \(64,\), expected a 2-D"),
    ("backbone.pos_embed", torch.zeros(25, 64), r"'backbone\.pos_embed' has shape \(25, 64\), expected a 3-D"),
    ("backbone.blocks.1.mlp.experts.htoh4.weight", torch.zeros(4, 64), r"htoh4\.weight' has shape \(4, 64\), expected a 3-D"),
    ("backbone.blocks.99999999999999999999.x", torch.zeros(1), r"names block 99999999999999999999; edgemoe supports at most 4096"),
    ("backbone.blocks.7.norm1.weight", torch.zeros(64), r"has no key 'backbone\.blocks\.4\.norm1\.weight'"),
    ("decoders.sal.conv_4.weight", torch.zeros(0, 32, 1, 1), r"'decoders\.sal\.conv_4\.weight' has no output channels"),
    ("backbone.pos_embed", torch.zeros(1, 1, 64), r"pos_embed holds no patch positions"),
    ("decoders.semseg.conv_0.weight", torch.zeros(32, 64, 3, 3, dtype=torch.int64), r"dtype torch\.int64, expected a floating"),
])
def test_malformed_tensors_raise_checkpoint_error_naming_the_key(tmp_path, state, key, value, message):
    bad = dict(state)
    bad[key] = value
    with pytest.raises(CheckpointError, match=message):
        edgemoe.Model.from_checkpoint(_save(tmp_path / "bad.pth", bad), **TINY)


def test_quantized_storage_is_refused(tmp_path, state):
    bad = dict(state)
    bad["backbone.cls_token"] = torch.quantize_per_tensor(torch.zeros(1, 1, 64), 0.1, 0, torch.qint8)
    with pytest.raises(CheckpointError, match=r"refusing to load 'torch\._utils\._rebuild_qtensor'|QInt8Storage"):
        edgemoe.Model.from_checkpoint(_save(tmp_path / "q.pth", bad), **TINY)


def test_persistent_id_of_the_wrong_form_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "pid.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02X\x03\x00\x00\x00abcQ.")
    with pytest.raises(CheckpointError, match=r"pid\.pth.*malformed storage reference"):
        edgemoe.Model.from_checkpoint(path)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(top_k=2.5), TypeError, r"top_k must be an int, got float"),
    (dict(top_k=True), TypeError, r"top_k must be an int, got bool"),
    (dict(num_heads=2.0), TypeError, r"num_heads must be an int, got float"),
    (dict(top_k=0), ValueError, r"top_k must be >= 1"),
    (dict(num_threads=0), ValueError, r"num_threads must be >= 1"),
    (dict(num_threads=-1), ValueError, r"num_threads must be >= 1"),
    (dict(num_threads=1000), ValueError, r"num_threads must be between 1 and the \d+ CPUs"),
    (dict(num_threads=1.5), TypeError, r"num_threads must be an int"),
    (dict(image_size=64), TypeError, r"image_size must be a pair"),
    (dict(image_size=(64, "96")), TypeError, r"image_size\[1\] must be an int"),
    (dict(top_k=9), CheckpointError, r"top_k=9 must be between 1 and the number of experts \(4\)"),
])
def test_bad_arguments_name_the_argument(tiny_checkpoint, kwargs, error, message):
    with pytest.raises(error, match=message):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, **{**TINY, **kwargs})


def test_num_threads_setter_is_checked(cpu_model):
    for bad, error in ((0, ValueError), (True, TypeError), (10 ** 6, ValueError)):
        with pytest.raises(error, match="num_threads"):
            cpu_model.num_threads = bad
    assert cpu_model.num_threads >= 1


@pytest.mark.parametrize("field, value, message", [
    ("num_heads", [1, 2], r"num_heads must be an int, got list"),
    ("moe_top_k", "two", r"moe_top_k must be an int, got str"),
    ("img_size", [64, 96, 3], r"img_size must be a pair"),
])
def test_bad_yaml_fields_name_file_and_field(tmp_path, tiny_checkpoint, field, value, message):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(yaml.safe_dump({"backbone_kwargs": {field: value}}))
    with pytest.raises(ValueError, match=rf"config file .*bad\.yml: {message}"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, config=str(cfg), **{k: v for k, v in TINY.items()
                                                                           if k != {"num_heads": "num_heads",
                                                                                    "moe_top_k": "top_k",
                                                                                    "img_size": "image_size"}[field]})


def test_model_config_fields_of_the_wrong_type(state):
    cfg = synthetic.preset("tiny")
    with pytest.raises(TypeError, match=r"config must be an edgemoe\.ModelConfig"):
        edgemoe.Model(cfg.to_native(), state)
    with pytest.raises(TypeError, match=r"model config field 'embed_dim' has the wrong type"):
        edgemoe.Model(tiny_config(embed_dim=64.0), state)


# --- 7. silent acceptance, decided ----------------------------------------------------------------------------

def test_negative_and_conjugate_views_are_resolved(cpu_model, tiny_model, state):
    x = synthetic.random_images(tiny_model.cfg, 1, seed=2)
    neg = torch._neg_view(-x)
    assert neg.is_neg() and torch.equal(neg, x)
    assert torch.equal(cpu_model(neg, task="semseg"), cpu_model(x, task="semseg"))
    weights = {k: torch._neg_view(-v) for k, v in state.items()}
    assert torch.equal(edgemoe.Model(tiny_model.cfg, weights)(x, task="sal"), cpu_model(x, task="sal"))


@pytest.mark.parametrize("names", [["00.pth", "01.pth"], ["0.pth", "1.pth", "1.pth.bak.pth"], ["0.pth", "+1.pth"]])
def test_oddly_named_rank_files_are_refused(tmp_path, tiny_checkpoint, names):
    ckpt = tmp_path / "odd"
    ckpt.mkdir()
    for i, name in enumerate(names):
        (ckpt / name).write_bytes((tiny_checkpoint / f"{min(i, 1)}.pth").read_bytes())
    with pytest.raises(CheckpointError, match=r"rank files are named 0\.pth, 1\.pth"):
        edgemoe.Model.from_checkpoint(ckpt, **TINY)


def test_rank_file_that_is_a_copy_of_rank_0_is_refused(tiny_checkpoint):
    (tiny_checkpoint / "1.pth").write_bytes((tiny_checkpoint / "0.pth").read_bytes())
    with pytest.raises(CheckpointError, match=r"1\.pth holds '.*' and \d+ more keys, but rank files after 0\.pth "
                                              r"hold only expert tensors \(a copy of 0\.pth\?\)"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, **TINY)


def test_transposed_image_size_is_a_different_valid_model(tiny_checkpoint):
    """Documented: a 4x6 and a 6x4 token grid both have 24 positions; the weights cannot tell them
    apart, so image_size is trusted (docs/safety.md)."""
    wide = edgemoe.Model.from_checkpoint(tiny_checkpoint, **TINY)
    tall = edgemoe.Model.from_checkpoint(tiny_checkpoint, **{**TINY, "image_size": (96, 64)})
    assert wide.config.grid == (4, 6) and tall.config.grid == (6, 4)
    assert tall(torch.zeros(1, 3, 96, 64), task="sal").shape == (1, 1, 96, 64)


# --- 8. emu: inputs outside the 8-bit pixel range ---------------------------------------------------------

def test_emu_warns_with_count_and_distance_when_it_clips(tiny_model, state):
    emu = edgemoe.Model(tiny_model.cfg, state, "emu")
    x = synthetic.pixel_images(tiny_model.cfg, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emu(x, task="semseg")  # preprocessed pixels: exact, silent
    level = 1 / (255 * 0.224)  # one pixel level of the green channel, normalised
    x[0, 1, 0, :3] = x[0, 1, 0, :3].clamp(max=(1 - 0.456) / 0.224) + 0.4 * level  # within rounding: silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emu(x, task="semseg")
    x[0, 1, 0, :3] = (1 - 0.456) / 0.224 + 10 * level
    with pytest.warns(InputRangeWarning, match=r"emu: 3 of 18432 input values lie outside the 8-bit pixel range "
                                               r"the accelerator reads \(up to 10 pixel levels beyond \[0, 255\]\)"):
        emu(x, task="semseg")
    with pytest.warns(InputRangeWarning, match=r"emu: \d+ of 18432 input values"):
        emu.features(synthetic.random_images(tiny_model.cfg, 1), "semseg")


# --- 10. the backend pointer is read under the model's lock -----------------------------------------------

def test_backend_switching_while_other_threads_read_it(tiny_model, state):
    model = edgemoe.Model(tiny_model.cfg, state)
    stop = threading.Event()
    seen, errors = set(), []

    def reader():
        try:
            while not stop.is_set():
                seen.add(model.backend)
                model.num_threads
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(20):
        model.to("emu" if i % 2 == 0 else "cpu")
    stop.set()
    for t in threads:
        t.join()
    assert not errors and seen <= {"cpu", "emu"}


# --- found by review: pickle tricks beyond the audit's ----------------------------------------------------

def _zip_with_pickle(path, pkl: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
    return path


@pytest.mark.parametrize("name, pkl, error, message", [
    # numpy.ndarray called directly: a view of another array's buffer, freed by a later BUILD
    ("ndarray", b"\x80\x02cnumpy\nndarray\n(J\x00\x00\x00\x04\x85X\x02\x00\x00\x00u1tR.", UnsafeCheckpointError,
     r"refusing to call"),
    # a key nested 300,000 tuples deep: hashing it recursed in C and overflowed the stack
    ("deep-key", b"\x80\x02}K\x00" + b"\x85" * 300_000 + b"Ns.", CheckpointError, r"dict key or set item is a tuple"),
    ("deep-set", b"\x80\x02cbuiltins\nset\n]K\x00" + b"\x85" * 1000 + b"a\x85R.", CheckpointError,
     r"dict key or set item is a tuple"),
    # an OrderedDict attribute shadowing its methods (items = 1) made the loader raise TypeError
    ("shadow", b"\x80\x02ccollections\nOrderedDict\n)R}X\x05\x00\x00\x00itemsK\x01sb.", UnsafeCheckpointError,
     r"other than torch's _metadata"),
    ("twice", b"\x80\x02ccollections\nOrderedDict\n)R}b}b.", UnsafeCheckpointError, r"only once"),
    ("ext", b"\x80\x02\x82\x01.", UnsafeCheckpointError, r"extension registry"),
    ("setitem-on-tensor-type", b"\x80\x02ctorch\nfloat32\nK\x00K\x01s.", CheckpointError, r"fills a dtype as if"),
])
def test_pickle_tricks_are_refused(tmp_path, name, pkl, error, message):
    with pytest.raises(error, match=message):
        edgemoe.Model.from_checkpoint(_zip_with_pickle(tmp_path / f"{name}.pth", pkl))


def test_rank_shards_cannot_inflate_through_concatenation(tmp_path):
    """Expert keys are concatenated across rank files before the model's keys are known; the new
    storage they need is bounded by the files too."""
    shared = torch.zeros(16 * 1024)
    shard = {f"backbone.blocks.{i}.mlp.experts.htoh4.weight": shared.view(16, 32, 32) for i in range(200)}
    ckpt = tmp_path / "inflate"
    ckpt.mkdir()
    for rank in range(2):
        _save(ckpt / f"{rank}.pth", shard)
    with pytest.raises(CheckpointError, match=r"declare \d+ bytes, more than twice its rank files hold"):
        edgemoe.Model.from_checkpoint(ckpt, **TINY)
    zero_dim = {"backbone.blocks.1.mlp.experts.htoh4.weight": torch.tensor(1.0)}
    for rank in range(2):
        _save(ckpt / f"{rank}.pth", zero_dim)
    with pytest.raises(CheckpointError, match=r"0-dimensional"):
        edgemoe.Model.from_checkpoint(ckpt, **TINY)


def test_paths_and_config_files_of_the_wrong_kind(tmp_path, tiny_checkpoint):
    for bad in (None, 5, ["a.pth"]):
        with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
            edgemoe.Model.from_checkpoint(bad)
    with pytest.raises(TypeError, match=r"config must be a str or os\.PathLike"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, config=3)
    latin = tmp_path / "latin1.yml"
    latin.write_bytes(b"num_heads: 2 # caf\xe9\n")
    with pytest.raises(ValueError, match=r"config file .*latin1\.yml cannot be read"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, config=str(latin))
    odd = tmp_path / "odd.yml"
    odd.write_text(yaml.safe_dump({"val_db_name": ["PASCALContext"], "backbone_kwargs": {"num_heads": 2}}))
    assert edgemoe.Model.from_checkpoint(tiny_checkpoint, config=str(odd), top_k=2, image_size=(64, 96))


def test_unlistable_directory(tmp_path, monkeypatch):
    """Root (as in CI) reads every directory, so the OS error is injected."""
    d = tmp_path / "locked"
    d.mkdir()

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(d), "iterdir", refuse)
    with pytest.raises(CheckpointError, match=r"cannot list checkpoint directory .*locked.*Permission denied"):
        edgemoe.Model.from_checkpoint(d)
