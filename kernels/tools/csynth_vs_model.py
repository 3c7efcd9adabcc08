#!/usr/bin/env python3
"""Model vs synthesis, loop by loop: the II each pipelined loop declares in kernels/src (the constants of
schedule.h, which the cycle model uses) against the II and depth Vitis HLS reports in csynth.xml.

    python3 kernels/tools/csynth_vs_model.py kernels/vitis/build/<board>/csynth/.../syn/report [more.xml ...]

Every argument is a csynth XML report or a directory searched for them (`make -C kernels/vitis BOARD=...
csynth` writes them). A loop whose reported II exceeds its declared II is marked MISSED: the model's
count for that loop (trips x II + depth) is then optimistic by the ratio. Loops the report has that the
sources do not label are listed as unlabelled (Vitis names them VITIS_LOOP_<line>_<n>).
"""
from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

KERNEL_SOURCES = Path(__file__).resolve().parent.parent / "src"


def _constants(text: str) -> dict:
    """constexpr int kName = <integer>; from schedule.h (the IIs are plain integers or other constants)."""
    values = {}
    for name, expr in re.findall(r"constexpr int (k\w+) = ([^;]+);", text):
        expr = expr.strip()
        if re.fullmatch(r"\d+", expr):
            values[name] = int(expr)
        elif expr in values:
            values[name] = values[expr]
    return values


def declared_loops(sources: Path = KERNEL_SOURCES) -> dict:
    """{loop label: declared II} for every labelled loop with a PIPELINE pragma in the kernel sources."""
    texts = {p.name: p.read_text() for p in sorted(sources.iterdir()) if p.suffix in (".h", ".cpp")}
    constants = _constants(texts.get("schedule.h", ""))
    loops = {}
    for text in texts.values():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*(\w+):\s*(//.*)?$", line)
            if not m or m.group(1) in ("public", "private", "protected", "default"):
                continue
            # the labelled loop's own pragma: right after its `for` line
            j = next((k for k in range(i + 1, min(i + 3, len(lines))) if lines[k].lstrip().startswith("for")), None)
            if j is None:
                continue
            for k in range(j + 1, min(j + 3, len(lines))):
                p = re.search(r"#pragma HLS PIPELINE II = (\w+)", lines[k])
                if p:
                    loops[m.group(1)] = int(p.group(1)) if p.group(1).isdigit() else constants.get(p.group(1))
    return loops


def reported_loops(paths) -> dict:
    """{(report, loop name): {"ii", "depth", "trips"}} for every pipelined loop in the csynth XML reports
    (keyed by report too: loops of one name in different functions must not hide each other)."""
    files = []
    for p in map(Path, paths):
        files += sorted(p.rglob("*.xml")) if p.is_dir() else [p]
    loops = {}
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as exc:
            raise SystemExit(f"{f}: not an XML report ({exc})")
        for el in root.iter():
            ii = el.find("PipelineII")
            if ii is None or ii.text is None or not ii.text.strip().isdigit():
                continue
            depth, trips = el.find("PipelineDepth"), el.find("TripCount")
            loops[(f.stem, el.tag)] = {"ii": int(ii.text), "depth": depth.text.strip() if depth is not None and depth.text else "?",
                             "trips": trips.text.strip() if trips is not None and trips.text else "?"}
    return loops


def compare(declared: dict, reported: dict):
    """Rows (loop, declared II, reported II, depth, trips, verdict) and the number of missed IIs."""
    rows, missed = [], 0
    seen = set()
    for (_, name), rep in sorted(reported.items()):
        base = re.sub(r"_\d+$", "", name)  # HLS suffixes inlined copies: mac_steps_1
        seen.update((name, base))
        want = declared.get(name, declared.get(base))
        if want is None:
            verdict = "unlabelled"
        elif rep["ii"] > want:
            verdict, missed = "MISSED", missed + 1
        else:
            verdict = "ok"
        rows.append((name, want, rep["ii"], rep["depth"], rep["trips"], verdict))
    for name in sorted(set(declared) - seen):
        rows.append((name, declared[name], None, "", "", "not in report"))
    return rows, missed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", help="csynth.xml files or directories holding them")
    args = parser.parse_args(argv)
    rows, missed = compare(declared_loops(), reported_loops(args.reports))
    print(f"{'loop':<24} {'model II':>8} {'report II':>9} {'depth':>6} {'trips':>10}  verdict")
    for name, want, got, depth, trips, verdict in rows:
        print(f"{name:<24} {'' if want is None else want:>8} {'' if got is None else got:>9} {depth:>6} {trips:>10}  {verdict}")
    print(f"{missed} loop(s) missed their declared II")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
