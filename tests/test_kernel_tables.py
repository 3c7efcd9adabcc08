"""The kernels' lookup ROMs (kernels/src/tables.h) are exactly what kernels/tools/gen_tables.py computes
from the functions' definitions: one entry one LSB off is a failure here, where the fixed-math error
bounds (kernels/tb/test_fixed_math.cpp) are too loose to see it."""
import importlib.util
import re
from pathlib import Path

KERNELS = Path(__file__).resolve().parent.parent / "kernels"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tables", KERNELS / "tools" / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_h_is_what_the_generator_writes():
    assert (KERNELS / "src" / "tables.h").read_text() == _generator().generate(), \
        "kernels/src/tables.h differs from kernels/tools/gen_tables.py's output: regenerate it, never edit it"


def test_the_comparison_sees_one_lsb():
    text = _generator().generate()
    first = re.search(r"EDGEMOE_TABLE_EXP2 \\\n\s*(\d+)u, (\d+)u", text)
    changed = text[:first.start(2)] + str(int(first.group(2)) + 1) + text[first.end(2):]
    assert changed != text and changed.count("u,") == text.count("u,")
