import dataclasses

import pytest
import torch

from edgemoe import synthetic

# Numerical contract of the fp32 CPU backend (stated once, used by every comparison):
#   max relative error = max|out - ref| / max|ref| over the whole output tensor, <= 1e-4,
# where ref is edgemoe.reference (PyTorch fp32). Both sides are fp32 with different summation
# orders, blocked GEMMs and BatchNorm folded into the convolutions; observed errors are ~1e-6.
MAX_REL_ERR = 1e-4


def max_rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return ((out - ref).abs().max() / ref.abs().max()).item()


def tiny_config(**changes):
    return dataclasses.replace(synthetic.preset("tiny"), **changes)


@pytest.fixture(scope="session")
def big_cache(tmp_path_factory):
    """Seeded checkpoints of the realistic presets, written once per test session."""
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def tiny_model():
    return synthetic.seeded_model(synthetic.preset("tiny"), seed=1)


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    return synthetic.save_m3vit_checkpoint(tiny_model, tmp_path / "ckpt", world_size=2)
