"""Loader fuzzing: 600 seeded mutations of a small checkpoint in both of torch's formats and as a
rank-shard directory (tests/checkpoint_fuzz.py says how each is made and run). Every case must end in
a correct load (finite outputs of the right shape) or an edgemoe CheckpointError: no signal, no hang,
no foreign exception, no allocation beyond the 1 GiB cap."""
import json
import subprocess
import sys
from pathlib import Path

CASES = 600
FAMILIES = ("byte_level", "zip_records", "pickle_ops", "tensors", "rank_dir")


def test_mutated_checkpoints_load_correctly_or_raise_checkpoint_error(tmp_path):
    script = Path(__file__).with_name("checkpoint_fuzz.py")
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "cases"), "7", str(CASES)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps({k: summary[k] for k in ("seconds", "outcomes", "families")}, indent=1))
    assert summary["cases"] == CASES
    assert summary["failures"] == [], json.dumps(summary["failures"][:10], indent=1)
    # the mutations reach every layer: each family has refusals, and some cases still load
    for family in FAMILIES:
        assert summary["families"].get(f"{family}:refused", 0) > 0, family
    assert summary["outcomes"].get("loaded", 0) > 0
    assert not list((tmp_path / "cases").iterdir())  # children wrote nothing beside the cases
