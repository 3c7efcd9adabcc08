"""Every checkpoint format M3ViT writes, in its exact on-disk layout, and every way a file can be bad."""
import collections
import dataclasses
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
import yaml

import edgemoe
from edgemoe import CheckpointError, synthetic
from edgemoe.checkpoint import UnsafeCheckpointError

# What the weights of the tiny preset cannot tell: 2 heads (default for width 64 is 1), top-2,
# and the 64x96 image (24 patch positions could also be 96x64, 32x192, ...).
TINY_OVERRIDES = dict(num_heads=2, top_k=2, image_size=(64, 96))


def _outputs(model, seed=0):
    x = synthetic.random_images(model.config, 2, seed)
    return model(x, tasks=model.tasks)


@pytest.fixture(scope="module")
def expected(tiny_model):
    """Outputs of the CPU backend fed the tiny model's state dict directly (no files involved)."""
    return _outputs(edgemoe.Model(tiny_model.cfg, dict(tiny_model.state_dict())))


def _assert_same(model, expected):
    got = _outputs(model)
    assert got.keys() == expected.keys()
    for task in expected:
        assert torch.equal(got[task], expected[task]), task


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_rank_shard_directory(tmp_path, tiny_model, expected, world_size):
    ckpt = synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "checkpoint.pth.tar", world_size=world_size)
    assert sorted(os.listdir(ckpt)) == [f"{r}.pth" for r in range(world_size)]
    _assert_same(edgemoe.Model.from_checkpoint(ckpt, **TINY_OVERRIDES), expected)


@pytest.mark.parametrize("layout", ["file", "model", "bare"])
@pytest.mark.parametrize("prefix", ["module.", ""])
def test_single_file_layouts(tmp_path, tiny_model, expected, layout, prefix):
    path = synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "best_model.pth.tar", layout=layout, prefix=prefix)
    _assert_same(edgemoe.Model.from_checkpoint(path, **TINY_OVERRIDES), expected)


def test_written_layout_is_m3vits(tiny_checkpoint):
    """The writer the tests rely on really produces M3ViT's layout (read back with plain pickle rules)."""
    rank0 = torch.load(tiny_checkpoint / "0.pth")
    rank1 = torch.load(tiny_checkpoint / "1.pth")
    assert set(rank0) == {"epoch", "backbone", "state_dict", "best_result", "optimizer"}
    sd0, sd1 = rank0["state_dict"], rank1["state_dict"]
    assert isinstance(sd0, collections.OrderedDict) and hasattr(sd0, "_metadata")
    assert all(k.startswith("module.") for k in sd0)
    assert any(k.startswith("module.tam_model0.") for k in sd0)
    assert sd0["module.backbone.blocks.1.mlp.experts.htoh4.weight"].shape[0] == 2  # 4 experts over 2 ranks
    assert sd0["module.backbone.blocks.1.mlp.gate.0.w_gate"].shape[1] == 4         # the gate is global
    assert all(".mlp.experts." in k for k in sd1) and len(sd1) == 2 * 4             # 2 MoE layers x 4 tensors
    assert isinstance(rank0["best_result"]["semseg"]["mIoU"], np.floating)
    with zipfile.ZipFile(tiny_checkpoint / "0.pth") as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"numpy.core.multiarray" in pkl and b"scalar" in pkl


def test_task_conditioned_gate(tmp_path):
    cfg = dataclasses.replace(synthetic.preset("tiny"), gate="task_conditioned", gate_task_dim=16)
    ref = synthetic.seeded_model(cfg, 2)
    ckpt = synthetic.save_m3vit_checkpoint(ref, tmp_path / "ckpt", world_size=2)
    model = edgemoe.Model.from_checkpoint(ckpt, **TINY_OVERRIDES)
    assert model.config.gate == "task_conditioned" and model.config.gate_task_dim == 16
    _assert_same(model, _outputs(edgemoe.Model(cfg, dict(ref.state_dict()))))


def test_yaml_config_supplies_what_weights_cannot(tmp_path, tiny_checkpoint, expected):
    cfg_file = tmp_path / "pup_moe_vit_tiny.yml"
    cfg_file.write_text(yaml.safe_dump({"setup": "multi_task", "backbone": "VisionTransformer_moe",
                                        "backbone_kwargs": {"num_heads": 2, "moe_top_k": 2, "img_size": [64, 96]}}))
    model = edgemoe.Model.from_checkpoint(tiny_checkpoint, config=str(cfg_file))
    assert (model.config.num_heads, model.config.top_k) == (2, 2)
    _assert_same(model, expected)
    # keyword arguments win over the YAML file
    assert edgemoe.Model.from_checkpoint(tiny_checkpoint, config=str(cfg_file), top_k=3).config.top_k == 3


def test_defaults_follow_m3vit_readme(tiny_checkpoint):
    cfg = edgemoe.Model.from_checkpoint(tiny_checkpoint, image_size=(64, 96)).config
    assert cfg.top_k == 4 and cfg.num_heads == 1  # README's top-4 (capped at E=4); width 64 -> 1 head
    assert cfg.moe_blocks == (1, 3) and cfg.num_experts == 4 and cfg.task_names == ("semseg", "sal", "normals")


def test_image_size_for_ambiguous_token_grid(tmp_path, tiny_model):
    ckpt = synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "c", world_size=1)
    with pytest.raises(ValueError, match=r"cannot tell the image size from 24 patch positions; pass image_size"):
        edgemoe.Model.from_checkpoint(ckpt)
    assert edgemoe.Model.from_checkpoint(ckpt, **TINY_OVERRIDES).config.image_size == (64, 96)
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        edgemoe.Model.from_checkpoint(ckpt, image_size=(64, 64))


# --- bad files ------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, tiny_model, zip_format):
    marker = tmp_path / "payload_ran"
    evil = {"state_dict": dict(tiny_model.state_dict()), "epoch": _Payload(marker)}
    path = tmp_path / "evil.pth"
    torch.save(evil, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to load '(posix|os)\.system'"):
        edgemoe.Model.from_checkpoint(path)
    assert not marker.exists()


def test_torchscript_archive_is_refused(tmp_path):
    """torch.load would hand this to torch.jit.load and run its code."""
    path = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript archive"):
        edgemoe.Model.from_checkpoint(path)


def test_plain_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(CheckpointError):
        edgemoe.Model.from_checkpoint(path)
    assert not marker.exists()


def test_truncated_file(tmp_path, tiny_model):
    path = synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "m.pth", layout="file")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.pth.*(truncated|corrupt)"):
        edgemoe.Model.from_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth"):
        edgemoe.Model.from_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        edgemoe.Model.from_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CheckpointError, match="no rank files"):
        edgemoe.Model.from_checkpoint(tmp_path / "empty_dir")


def test_not_an_m3vit_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="pos_embed"):
        edgemoe.Model.from_checkpoint(path)


def _edited(tmp_path, tiny_model, edit):
    state = dict(tiny_model.state_dict())
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save({"state_dict": collections.OrderedDict(("module." + k, v) for k, v in state.items())}, path)
    return path


def test_missing_key_is_named(tmp_path, tiny_model):
    path = _edited(tmp_path, tiny_model, lambda s: s.pop("backbone.blocks.2.attn.qkv.bias"))
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.2\.attn\.qkv\.bias.*edited\.pth"):
        edgemoe.Model.from_checkpoint(path, **TINY_OVERRIDES)


def test_wrong_shape_is_named_with_both_shapes(tmp_path, tiny_model):
    path = _edited(tmp_path, tiny_model, lambda s: s.update({"backbone.blocks.0.mlp.fc2.bias": torch.zeros(63)}))
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.0\.mlp\.fc2\.bias.*\(63,\).*\(64,\)"):
        edgemoe.Model.from_checkpoint(path, **TINY_OVERRIDES)


def test_non_tensor_entry(tmp_path, tiny_model):
    path = _edited(tmp_path, tiny_model, lambda s: s.update({"backbone.cls_token": [1.0, 2.0]}))
    with pytest.raises(CheckpointError, match="cls_token.*not a tensor"):
        edgemoe.Model.from_checkpoint(path)


def test_unknown_task_head(tmp_path, tiny_model):
    def rename(s):
        for k in [k for k in s if k.startswith("decoders.sal.")]:
            s[k.replace("decoders.sal.", "decoders.optical_flow.")] = s.pop(k)
    with pytest.raises(CheckpointError, match="optical_flow"):
        edgemoe.Model.from_checkpoint(_edited(tmp_path, tiny_model, rename), **TINY_OVERRIDES)


def test_missing_rank_file(tiny_checkpoint):
    (tiny_checkpoint / "1.pth").unlink()
    with pytest.raises(CheckpointError, match="scores 4 experts but the checkpoint holds 2"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, **TINY_OVERRIDES)


def test_rank_files_with_a_gap(tmp_path, tiny_model):
    ckpt = synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "c", world_size=4)
    (ckpt / "2.pth").unlink()
    with pytest.raises(CheckpointError, match=r"rank files \[0, 1, 3\]"):
        edgemoe.Model.from_checkpoint(ckpt, **TINY_OVERRIDES)


def test_inconsistent_shards(tiny_checkpoint):
    rank1 = torch.load(tiny_checkpoint / "1.pth")
    key = "module.backbone.blocks.3.mlp.experts.h4toh.weight"
    rank1["state_dict"][key] = torch.zeros(2, 64, 32)
    torch.save(rank1, tiny_checkpoint / "1.pth")
    with pytest.raises(CheckpointError, match=r"inconsistent shards.*h4toh\.weight.*\(2, 64, 32\).*1\.pth"):
        edgemoe.Model.from_checkpoint(tiny_checkpoint, **TINY_OVERRIDES)
