"""Seeded mutations of the noop xclbin edgemoe writes, each loaded by backend="fpga" under XRT's noop
shim in a forked child (tests/fuzz_harness.py: address-space cap, timeout).

Run by tests/test_xclbin_fuzz.py as its own process (``python xclbin_fuzz.py WORKDIR SEED CASES``).
Every case must end in a model that loads and runs, or a ValueError naming the xclbin file. Families:
byte flips, truncations, section-table edits, edits inside the binary tables, and XML mutations
(nesting, quoting, comments, whitespace, entities, values, encodings), the container rebuilt around
them so they reach the XML parser. Prints a JSON summary as its last line."""
from __future__ import annotations

import collections
import json
import os
import random
import re
import struct
import sys
import time
from pathlib import Path

import xclbin_edit as xe
from fuzz_harness import flip_bytes, run_in_child

CAP_BYTES = 1 << 30
TIMEOUT_S = 20.0
FAMILIES = ("byte_flips", "truncation", "section_table", "tables", "xml_markup", "xml_values")


def byte_flips(data: bytes, rng: random.Random) -> bytes:
    return flip_bytes(data, rng, 16)


def truncation(data: bytes, rng: random.Random) -> bytes:
    size = rng.choice([rng.randrange(len(data)), len(data) + rng.randint(1, 4096)])
    b = bytearray((data + os.urandom(4096))[:size] if size > len(data) else data[:size])
    if rng.random() < 0.5 and len(b) >= xe.LENGTH_AT + 8:  # the header agrees, the sections do not
        struct.pack_into("<Q", b, xe.LENGTH_AT, len(b))
    return bytes(b)


EDGES = [0, 1, 7, 8, 40, 456, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1, 2**64 - 8]


def section_table(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    count = struct.unpack_from("<I", b, xe.COUNT_AT)[0]
    choice = rng.randrange(4)
    if choice == 0:
        struct.pack_into("<I", b, xe.COUNT_AT, rng.choice([0, 1, count - 1, count + 1, 4096, 65536, 2**32 - 1]))
    else:
        at = xe.SECTIONS_AT + rng.randrange(count) * xe.SECTION.size
        field, width = rng.choice([(0, 4), (24, 8), (32, 8)])
        value = rng.choice(EDGES + [len(b), len(b) - 8, rng.randrange(len(b))])
        if width == 4:
            value = rng.choice([value & 0xFFFFFFFF, rng.randrange(40)])
        b[at + field:at + field + width] = value.to_bytes(width, "little")
    return bytes(b)


def tables(data: bytes, rng: random.Random) -> bytes:
    """A count or an index inside MEM_TOPOLOGY, IP_LAYOUT or CONNECTIVITY, the container kept whole."""
    sections = xe.sections(data)
    binary = [i for i, (k, _, _) in enumerate(sections) if k in (xe.MEM_TOPOLOGY, xe.IP_LAYOUT, xe.CONNECTIVITY)]
    i = rng.choice(binary)
    kind, name, payload = sections[i]
    p = bytearray(payload)
    if rng.random() < 0.4:
        struct.pack_into("<i", p, 0, rng.choice([-1, 0, 2, 1000, 65536, 2**31 - 1]))
    else:
        at = rng.randrange(4, max(5, len(p) - 4))
        struct.pack_into("<i", p, at, rng.choice([-1, 0, 1, 27, 128, 65535, 2**31 - 1]))
    sections[i] = (kind, name, bytes(p))
    return xe.build(data, sections)


SNIPPETS = [b"<", b">", b"/>", b'"', b"'", b"&", b"&amp;", b"&#0;", b"&#x110000;", b"<!--", b"-->", b"<![CDATA[",
            b"]]>", b"\t", b"\n", b"\r", b"<!DOCTYPE x>", b"<?pi x?>", b"\xff", b"\xc3\xa9", b"\x01", b"</core>",
            b'<kernel name="k"/>', b'<kernel name="(a|a)*b"/>', b"<core/>", b'<arg name="a" id="0"/>']
VALUES = [b"", b"0", b"0x0", b"0x1C", b"010", b"-1", b" 1", b"1 ", b"abc", b"0x10000000000000000",
          b"18446744073709551615", b"m3vit_backbone", b"a&lt;b", b"&quot;&apos;", b"\xc3\xa9", b"&#233;", b"x>y",
          b"(a*)*b", b"slave", b"inout", b"k" * 70, b"k" * 5000]


def xml_markup(data: bytes, rng: random.Random) -> bytes:
    xml = bytearray(xe.kernel_xml(data))
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(xml) + 1)
        op = rng.randrange(6)
        if op == 0:
            xml[at:at] = rng.choice(SNIPPETS)
        elif op == 1:
            del xml[at:at + rng.randint(1, 60)]
        elif op == 2:  # nesting: deep or wide, around one spot
            n = rng.choice([5, 31, 33, 200, 20000])
            xml[at:at] = b"<n>" * n + b"</n>" * n if rng.random() < 0.5 else b"<e/>" * n
        elif op == 3:  # a comment, possibly holding markup
            xml[at:at] = b"<!-- " + rng.choice(SNIPPETS).replace(b"--", b"") + b" -->"
        elif op == 4:  # whitespace between attributes
            spaces = [m.start() for m in re.finditer(rb' (?=[A-Za-z]+=")', bytes(xml))]
            if spaces:
                s = rng.choice(spaces)
                xml[s:s + 1] = rng.choice([b"\t", b"\n", b"\r\n", b"  ", b""])
        else:  # quoting: a value's double quotes turned single, or a quote inside another value
            quotes = [m.start() for m in re.finditer(rb'="[^"]*"', bytes(xml))]
            if quotes:
                q = rng.choice(quotes)
                end = xml.index(b'"', q + 2)
                if rng.random() < 0.5:
                    xml[q + 1:q + 2], xml[end:end + 1] = b"'", b"'"
                else:
                    xml[end:end] = rng.choice([b"'", b' name="x', b">", b"/>"])
    return xe.with_kernel_xml(data, bytes(xml))


def xml_values(data: bytes, rng: random.Random) -> bytes:
    xml = xe.kernel_xml(data)
    values = list(re.finditer(rb'="([^"]*)"', xml))
    for _ in range(rng.randint(1, 2)):
        m = rng.choice(values)
        xml = xml[:m.start(1)] + rng.choice(VALUES) + xml[m.end(1):]
        values = list(re.finditer(rb'="([^"]*)"', xml))
    if rng.random() < 0.2:
        xml = xml.replace(b'encoding="UTF-8"', rng.choice([b'encoding="ISO-8859-1"', b'encoding="UTF-16"', b""]))
    return xe.with_kernel_xml(data, xml)


def _load(path: Path, config, state, images) -> dict:
    import edgemoe

    try:
        model = edgemoe.Model(config, state, "fpga", xclbin=str(path))
    except ValueError as exc:
        named = str(exc).startswith(f"xclbin '{path}'")
        return {"outcome": "refused" if named else "unnamed", "message": str(exc)[:300]}
    out = model(images, task=model.tasks[0])
    ok = out.shape[0] == 1 and tuple(out.shape[2:]) == tuple(config.image_size)
    return {"outcome": "loaded" if ok else "bad_output"}


def main(workdir: str, seed: int, cases: int) -> dict:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    from edgemoe import synthetic
    from xrt_noop import noop_environment

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = synthetic.preset("tiny")
    state = dict(synthetic.seeded_model(config, seed=seed).state_dict())
    images = synthetic.pixel_images(config, 1, seed)
    outcomes, families, failures = collections.Counter(), collections.Counter(), []
    start = time.monotonic()
    with noop_environment(workdir / "xrt") as good_path:
        good = Path(good_path).read_bytes()
        for index in range(cases):
            family = FAMILIES[index % len(FAMILIES)]
            rng = random.Random(seed * 1_000_003 + index)
            path = workdir / f"case{index}.xclbin"
            path.write_bytes(globals()[family](good, rng))
            result = run_in_child(lambda: _load(path, config, state, images), TIMEOUT_S, CAP_BYTES)
            outcomes[result["outcome"]] += 1
            families[(family, result["outcome"])] += 1
            if result["outcome"] not in ("refused", "loaded"):
                failures.append({"case": index, "family": family, **result})
            path.unlink()
    return {"cases": cases, "seconds": round(time.monotonic() - start, 1), "outcomes": dict(outcomes),
            "families": {f"{f}:{o}": n for (f, o), n in sorted(families.items())}, "failures": failures}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
