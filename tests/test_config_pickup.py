"""Hyper-parameters a checkpoint does not record (heads, top-k, image size): found next to the
checkpoint, reported with their source, warned about when guessed (issue 19, part 1)."""
import shutil
import warnings

import pytest
import torch

import edgemoe
from edgemoe import data
from edgemoe.config import find_config, write_yaml_config
from edgemoe.errors import ConfigWarning
from edgemoe.train import SYNTHETIC_CONFIG, train


@pytest.fixture(scope="module")
def builtin_copy(tmp_path_factory):
    """The built-in checkpoint in a run directory of our own, without its config."""
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(data.trained_checkpoint(), run / "checkpoint.pth.tar")
    return run


def _load(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = edgemoe.Model.from_checkpoint(path, **kwargs)
    return model, [w for w in caught if issubclass(w.category, ConfigWarning)]


def test_builtin_model_loads_as_trained():
    model, caught = _load(data.trained_checkpoint())
    c = model.config
    assert (c.num_heads, c.top_k, c.image_size) == (SYNTHETIC_CONFIG.num_heads, SYNTHETIC_CONFIG.top_k,
                                                    SYNTHETIC_CONFIG.image_size) == (3, 2, (128, 256))
    assert not caught
    assert c.source("num_heads") == c.source("top_k") == f"file {data.trained_config()}"
    text = str(c)
    assert "heads              3" in text and "<- file" in text and "<- weights" in text


def test_pretrained_is_the_builtin_model_with_its_config():
    model = edgemoe.Model.pretrained()
    explicit = edgemoe.Model.from_checkpoint(data.trained_checkpoint(), config=data.trained_config())
    assert model.config == explicit.config
    x = edgemoe.preprocess(edgemoe.imaging.sample_photo(), model.config.image_size)
    assert torch.equal(model(x, task="semseg"), explicit(x, task="semseg"))
    assert edgemoe.reference.M3ViT.pretrained().cfg == model.config
    assert model.tasks == list(SYNTHETIC_CONFIG.task_names)


def test_defaults_are_warned_once_and_reported(builtin_copy):
    model, caught = _load(builtin_copy / "checkpoint.pth.tar")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "num_heads=1" in message and "top_k=4" in message and "config=" in message
    c = model.config
    assert (c.num_heads, c.top_k) == (1, 4)
    assert c.source("num_heads").startswith("default") and c.source("top_k").startswith("default")
    assert "<- default" in str(c)


def test_keywords_win_and_are_reported(builtin_copy):
    model, caught = _load(builtin_copy / "checkpoint.pth.tar", num_heads=3, top_k=2)
    assert not caught
    assert (model.config.num_heads, model.config.top_k) == (3, 2)
    assert model.config.source("top_k") == "keyword"
    # A keyword beats a config file found next to the checkpoint.
    model, _ = _load(data.trained_checkpoint(), top_k=3)
    assert model.config.top_k == 3 and model.config.source("top_k") == "keyword"
    assert model.config.num_heads == 3


def test_config_found_in_run_directory_and_checkpoint_directory(tmp_path, builtin_copy):
    run = tmp_path / "run"
    shutil.copytree(builtin_copy, run)
    (run / "pup_vit_moe.yml").write_text("backbone_kwargs:\n  num_heads: 3\n  moe_top_k: 2\n")
    model, caught = _load(run / "checkpoint.pth.tar")
    assert (model.config.num_heads, model.config.top_k) == (3, 2) and not caught
    assert model.config.source("top_k") == f"file {run / 'pup_vit_moe.yml'}"
    # Inside the checkpoint directory (where `edgemoe train` writes it) it is found first.
    (run / "checkpoint.pth.tar" / "config.yml").write_text("backbone_kwargs:\n  num_heads: 6\n  moe_top_k: 3\n")
    model, _ = _load(run / "checkpoint.pth.tar")
    assert (model.config.num_heads, model.config.top_k) == (6, 3)
    # config=False looks for none.
    model, caught = _load(run / "checkpoint.pth.tar", config=False)
    assert (model.config.num_heads, model.config.top_k) == (1, 4) and len(caught) == 1


def test_unrelated_or_ambiguous_yaml_is_not_used(tmp_path, builtin_copy):
    run = tmp_path / "run"
    shutil.copytree(builtin_copy, run)
    (run / "docker-compose.yml").write_text("services:\n  web:\n    image: x\n")
    (run / ".pre-commit-config.yaml").write_text("num_heads: 7\n")  # a dotfile is never a config
    assert find_config(run / "checkpoint.pth.tar") is None  # supplies no hyper-parameter
    (run / "a.yml").write_text("backbone_kwargs:\n  num_heads: 3\n")
    assert find_config(run / "checkpoint.pth.tar") == run / "a.yml"  # the unrelated YAML does not hide it
    (run / "b.yml").write_text("backbone_kwargs:\n  num_heads: 6\n")
    with pytest.warns(ConfigWarning, match="several M3ViT configs"):
        assert find_config(run / "checkpoint.pth.tar") is None
    (run / "config.yml").write_text(": not yaml : [")
    with pytest.warns(ConfigWarning, match="ignoring"):
        assert find_config(run / "checkpoint.pth.tar") is None


def test_given_config_that_is_broken_is_an_error(tmp_path, builtin_copy):
    bad = tmp_path / "bad.yml"
    bad.write_text("backbone_kwargs:\n  num_heads: three\n")
    with pytest.raises(ValueError, match="config file .*num_heads"):
        edgemoe.Model.from_checkpoint(builtin_copy / "checkpoint.pth.tar", config=bad)
    huge = tmp_path / "huge.yml"
    huge.write_text("# " + "x" * (2 << 20))
    with pytest.raises(ValueError, match="KiB"):
        edgemoe.Model.from_checkpoint(builtin_copy / "checkpoint.pth.tar", config=huge)


def test_written_config_round_trips(tmp_path):
    write_yaml_config(SYNTHETIC_CONFIG, tmp_path / "config.yml")
    assert find_config(tmp_path / "config.yml") == tmp_path / "config.yml"
    from edgemoe.config import read_yaml_config

    assert read_yaml_config(tmp_path / "config.yml") == {"num_heads": 3, "top_k": 2, "image_size": (128, 256)}


def test_train_writes_its_config(tmp_path):
    """A model `edgemoe train` wrote reloads with the hyper-parameters it was trained with."""
    config = SYNTHETIC_CONFIG.__class__(**{**SYNTHETIC_CONFIG.__dict__, "depth": 2, "moe_blocks": (1,),
                                           "num_heads": 6, "top_k": 3, "head_channels": 8, "provenance": ()})
    out = tmp_path / "ckpt"
    reference = train(out, steps=1, batch_size=1, config=config, progress=False, log_every=0)
    assert (out / "config.yml").is_file()
    model, caught = _load(out)
    assert not caught
    assert (model.config.num_heads, model.config.top_k, model.config.image_size) == (6, 3, (128, 256))
    x = edgemoe.preprocess(edgemoe.imaging.sample_photo(), model.config.image_size)
    with torch.no_grad():
        expected = reference(x, "semseg")
    assert torch.allclose(model(x, task="semseg"), expected, rtol=1e-4, atol=1e-4)


def test_config_argument_values(builtin_copy, tmp_path):
    ckpt = builtin_copy / "checkpoint.pth.tar"
    with pytest.raises(TypeError, match="config must be a str"):
        edgemoe.Model.from_checkpoint(ckpt, config=0)  # 0 == False, but it is not config=False
    with pytest.raises(ValueError, match="empty path"):
        edgemoe.Model.from_checkpoint(ckpt, config="")
    # A config made by hand records no provenance: its heads come from its maker, not the weights.
    assert SYNTHETIC_CONFIG.source("num_heads") == "given" and SYNTHETIC_CONFIG.source("depth") == "weights"


def test_a_found_config_that_does_not_fit_is_named(tmp_path, builtin_copy):
    run = tmp_path / "run"
    shutil.copytree(builtin_copy, run)
    (run / "config.yml").write_text("backbone_kwargs:\n  num_heads: 5\n")  # 5 does not divide the width 96
    with pytest.raises(edgemoe.CheckpointError, match=r"num_heads=5 .*config found next to the checkpoint.*config=False"):
        edgemoe.Model.from_checkpoint(run / "checkpoint.pth.tar")

