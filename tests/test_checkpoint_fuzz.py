"""Loader fuzzing: 600 seeded mutations of a small checkpoint in both of torch's formats and as a
rank-shard directory (tests/checkpoint_fuzz.py says how each is made and run). Every case must end in
a correct load (finite outputs of the right shape) or an edgemoe CheckpointError: no signal, no hang,
no foreign exception, no allocation beyond the 1 GiB cap."""
import json
from pathlib import Path

from fuzz_harness import run_fuzz_script

CASES = 600
FAMILIES = ("byte_level", "zip_records", "pickle_ops", "tensors", "rank_dir")


def test_mutated_checkpoints_load_correctly_or_raise_checkpoint_error(tmp_path):
    summary = run_fuzz_script(Path(__file__).with_name("checkpoint_fuzz.py"), tmp_path / "cases", 7, CASES)
    print(json.dumps({k: summary[k] for k in ("seconds", "outcomes", "families")}, indent=1))
    assert summary["cases"] == CASES
    assert summary["failures"] == [], json.dumps(summary["failures"][:10], indent=1)
    # the mutations reach every layer: each family has refusals, and some cases still load
    for family in FAMILIES:
        assert summary["families"].get(f"{family}:refused", 0) > 0, family
    assert summary["outcomes"].get("loaded", 0) > 0
    assert not list((tmp_path / "cases").iterdir())  # children wrote nothing beside the cases
