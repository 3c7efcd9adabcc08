"""xclbin fuzzing: 420 seeded mutations of the noop xclbin (tests/xclbin_fuzz.py says how each is made
and run), each loaded by backend="fpga" under XRT's noop shim in a forked child. Every case must end
in a model that loads and runs or a ValueError naming the xclbin: no signal, no hang, no foreign
exception, no allocation beyond the 1 GiB cap."""
import json
from pathlib import Path

import pytest

from fuzz_harness import run_fuzz_script
from xrt_noop import XRT_LIBDIR

CASES = 420
pytestmark = pytest.mark.skipif(XRT_LIBDIR is None, reason="this build has no XRT (the Makefile's build has)")


def test_mutated_xclbins_load_or_are_refused_by_name(tmp_path):
    summary = run_fuzz_script(Path(__file__).with_name("xclbin_fuzz.py"), tmp_path / "cases", 11, CASES)
    print(json.dumps({k: summary[k] for k in ("seconds", "outcomes", "families")}, indent=1))
    assert summary["cases"] == CASES
    assert summary["failures"] == [], json.dumps(summary["failures"][:10], indent=1)
    families = ("byte_flips", "truncation", "section_table", "tables", "xml_markup", "xml_values")
    for family in families:  # every family reaches a refusal; the XML ones also keep files that load
        assert summary["families"].get(f"{family}:refused", 0) > 0, family
    for family in ("xml_markup", "xml_values", "tables"):
        assert summary["families"].get(f"{family}:loaded", 0) > 0, family
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["xrt"]  # children wrote nothing else
