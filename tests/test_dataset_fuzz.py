"""Dataset-folder fuzzing: 350 seeded mutations of small PASCAL-Context and NYUD folders
(tests/dataset_fuzz.py says how each is made and run), each read item by item in a forked child.
Every case must end in correct items or a ValueError / FileNotFoundError naming a path in the folder:
no signal, no hang (a FIFO), no foreign exception, no allocation beyond the 1 GiB cap."""
import json
import subprocess
import sys
from pathlib import Path

CASES = 350
FAMILIES = ("image_bytes", "image_headers", "mat_labels", "npy_labels", "folder")


def test_mutated_dataset_folders_read_correctly_or_are_refused_by_name(tmp_path):
    script = Path(__file__).with_name("dataset_fuzz.py")
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "cases"), "13", str(CASES)],
                         capture_output=True, text=True, timeout=600, cwd=script.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps({k: summary[k] for k in ("seconds", "outcomes", "families")}, indent=1))
    assert summary["cases"] == CASES
    assert summary["failures"] == [], json.dumps(summary["failures"][:10], indent=1)
    for family in FAMILIES:  # every family reaches a refusal and keeps some folders that still read
        assert summary["families"].get(f"{family}:refused", 0) > 0, family
    assert sum(n for key, n in summary["families"].items() if key.endswith(":loaded")) > CASES // 10
    assert run.stderr.count("Warning") == 0, run.stderr[-2000:]
