"""Dataset-folder fuzzing: 350 seeded mutations of small PASCAL-Context and NYUD folders
(tests/dataset_fuzz.py says how each is made and run), each read item by item in a forked child.
Every case must end in correct items or a ValueError / FileNotFoundError naming a path in the folder:
no signal, no hang (a FIFO), no foreign exception, no allocation beyond the 1 GiB cap."""
import json
from pathlib import Path

from fuzz_harness import run_fuzz_script

CASES = 350
FAMILIES = ("image_bytes", "image_headers", "mat_labels", "npy_labels", "folder")


def test_mutated_dataset_folders_read_correctly_or_are_refused_by_name(tmp_path):
    summary = run_fuzz_script(Path(__file__).with_name("dataset_fuzz.py"), tmp_path / "cases", 13, CASES)
    print(json.dumps({k: summary[k] for k in ("seconds", "outcomes", "families")}, indent=1))
    assert summary["cases"] == CASES
    assert summary["failures"] == [], json.dumps(summary["failures"][:10], indent=1)
    for family in FAMILIES:  # every family reaches a refusal and keeps some folders that still read
        assert summary["families"].get(f"{family}:refused", 0) > 0, family
    assert sum(n for key, n in summary["families"].items() if key.endswith(":loaded")) > CASES // 10
    assert summary["stderr"].count("Warning") == 0, summary["stderr"][-2000:]
