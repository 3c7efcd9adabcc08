"""The HLS rules of DEVELOPERS.md, enforced on the kernel sources (kernels/src): no heap, no
exceptions, no recursion, no std containers, a compile-time bound on every loop. (The ctest
targets compile them with -fno-exceptions -fno-rtti for every board configuration.)"""
import re
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent.parent / "kernels" / "src"
SOURCES = sorted(p for p in KERNELS.iterdir() if p.suffix in (".h", ".cpp"))


def code(path):
    text = path.read_text()
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_heap_exceptions_or_std_containers(path):
    text = code(path)
    forbidden = {
        r"\bnew\b": "heap allocation (new)", r"\bdelete\b": "heap allocation (delete)",
        r"\b(malloc|calloc|realloc|free)\s*\(": "heap allocation (malloc)",
        r"\b(throw|try|catch)\b": "exceptions", r"\b(dynamic_cast|typeid)\b": "RTTI",
        r"\bstd::": "the standard library", r"#include\s*<(vector|map|list|deque|set|string|memory|functional)>":
            "std containers", r"\bvirtual\b": "virtual dispatch",
    }
    for pattern, what in forbidden.items():
        match = re.search(pattern, text)
        assert match is None, f"{path.name} uses {what}: {match.group(0)!r}"


def _functions(text):
    """(name, body) of every function definition, by brace matching."""
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\([^;{}()]*(?:\([^()]*\)[^;{}()]*)*\)\s*(?:const\s*)?\{", text):
        name, depth, i = m.group(1), 1, m.end()
        if name in ("if", "for", "while", "switch", "return"):
            continue
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        yield name, text[m.end():i]


def test_no_recursion():
    text = "\n".join(code(p) for p in SOURCES)
    functions = dict(_functions(text))
    assert len(functions) > 15, "the function scanner found too little; fix the test"
    calls = {f: {g for g in functions if g != f and re.search(rf"\b{g}\s*\(", body)} for f, body in functions.items()}
    for f, body in functions.items():
        assert not re.search(rf"\b{f}\s*\(", body), f"{f} calls itself"

    def reaches(start, target, seen):
        for g in calls[start]:
            if g == target or (g not in seen and (seen.add(g) or reaches(g, target, seen))):
                return True
        return False

    for f in functions:
        assert not reaches(f, f, set()), f"{f} is part of a recursive cycle"


CONSTANT = r"(EDGEMOE_[A-Z_]+|k[A-Z]\w*)"
# A bound is a constant expression, or upto<constant expression>(runtime size): a runtime size
# clamped to a compile-time maximum (kernels/src/hls_types.h).
BOUND = re.compile(rf"^\s*(upto<[\s\d+\-*/()]*({CONSTANT}[\s\d+\-*/()]*)*>\([^;]*\)|[\s\d+\-*/()]*({CONSTANT}[\s\d+\-*/()]*)*)\s*$")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_loop_has_a_static_bound(path):
    for m in re.finditer(r"\bfor\s*\(([^;]*);([^;]*);", code(path)):
        condition = m.group(2).strip()
        bound = re.split(r"<=|>=|<|>", condition, maxsplit=1)[-1]
        assert BOUND.match(bound), f"{path.name}: loop bound {condition!r} is not a compile-time constant"


def test_kernel_declaration_names_follow_the_interface_list():
    """kernel_interface.h is the one description of the top kernel's arguments; the compiler checks the
    declaration's types against it (emu_device.cpp), this checks the names (XRT binds by name)."""
    listed = re.findall(r"\b(?:BUFFER|SCALAR)\((\w+),", code(KERNELS / "kernel_interface.h").split("namespace")[0])
    declaration = code(KERNELS / "m3vit_backbone.h")
    params = declaration[declaration.index("m3vit_backbone("):declaration.index(");")]
    declared = [p.strip().split()[-1].lstrip("*") for p in params[len("m3vit_backbone("):].split(",")]
    assert declared == listed
    assert len(listed) == 28 and listed[0] == "images" and listed[-1] == "last_stage"
