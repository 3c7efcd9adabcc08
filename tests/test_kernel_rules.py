"""The HLS rules of DEVELOPERS.md, enforced on the kernel sources (kernels/src): no heap, no
exceptions, no recursion, no std containers, no floating point, and every loop a `for` with a
compile-time bound. (The ctest targets compile them with -fno-exceptions -fno-rtti for every
board configuration.) Each rule is checked against a source that breaks it
(test_rules_catch_what_they_forbid), so a scanner that goes blind fails too."""
import re
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent.parent / "kernels" / "src"
SOURCES = sorted(p for p in KERNELS.iterdir() if p.suffix in (".h", ".cpp"))


def code(path):
    text = path.read_text()
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


FORBIDDEN = {
        r"\bnew\b": "heap allocation (new)", r"\bdelete\b": "heap allocation (delete)",
        r"\b(malloc|calloc|realloc|free)\s*\(": "heap allocation (malloc)",
        r"\b(throw|try|catch)\b": "exceptions", r"\b(dynamic_cast|typeid)\b": "RTTI",
        r"\bstd::": "the standard library", r"#include\s*<(vector|map|list|deque|set|string|memory|functional)>":
            "std containers", r"\bvirtual\b": "virtual dispatch",
        # The datapath is fixed point end to end: a float would synthesise to a floating-point core
        # (and break bit-exactness with emu). Real constants are written as ap_fixed initialisers.
        r"\b(float|double)\b|\bhalf\s*[<(]|\bhls::half\b|\b_Float\d+\b|\b__(fp16|bf16|float128)\b": "floating point",
        r"\.to_(double|float|half)\s*\(": "floating point (ap_fixed::to_double/to_float)",
        r"\bauto\b[^;=]*=[^;]*(\d\.\d*|\.\d+|\d[eE][-+]?\d)": "floating point (auto deduced from a real literal)",
        r"\d\.\d*[fF]\b|\.\d+[fF]\b": "floating point (a float literal)",
        r"#include\s*[<\"](cmath|math\.h|complex|tgmath\.h)[>\"]": "floating point (the C math library)",
        r"(?<![\w:.])(exp|expf|exp2|log|logf|log2|sqrt|sqrtf|pow|powf|sin|cos|tanh|erf|erff|fabs|fabsf|floor|ceil)\s*\(":
            "floating point (a C math function)",
        r"\b(alloca|__builtin_alloca)\b": "stack allocation (alloca)",
        r"\bnamespace\s+\w+\s*=\s*(::)?std\b|\busing\s+namespace\s+(::)?std\b|\busing\s+(::)?std::":
            "the standard library (through an alias)",
        r"\bwhile\b|\bdo\s*\{": "a while/do loop (every loop is a `for` with a static bound)",
        r"\bgoto\b": "goto",
}


def forbidden_uses(text):
    found = [what for pattern, what in FORBIDDEN.items() if re.search(pattern, text)]
    # function pointers (indirect calls hide recursion, and HLS cannot synthesise them), outside the
    # emulation-only code that never reaches Vitis
    if re.search(r"\(\s*\*\s*\w*\s*\)\s*\(", synthesised(text)):
        found.append("a function pointer")
    return found


HOST_ONLY = re.compile(r"#\s*(ifdef\s+(EDGEMOE_EMU_PARALLEL|EDGEMOE_EMU_EXACT_MAC|EDGEMOE_ACCESS_CHECK)|ifndef\s+__SYNTHESIS__|"
                       r"if\s+!\s*defined\s*\(?\s*__SYNTHESIS__)")


def synthesised(text):
    """`text` without the blocks Vitis never compiles (#ifdef EDGEMOE_EMU_PARALLEL or EDGEMOE_EMU_EXACT_MAC, #ifndef __SYNTHESIS__);
    their #else branches stay."""
    out, stack = [], []  # per open #if: is the current branch host-only?
    for line in text.splitlines():
        directive = line.strip()
        if re.match(r"#\s*if", directive):
            stack.append(bool(HOST_ONLY.match(directive)))
            continue
        if re.match(r"#\s*el", directive) and stack:
            stack[-1] = False if stack[-1] else stack[-1]
            continue
        if re.match(r"#\s*endif", directive) and stack:
            stack.pop()
            continue
        if not any(stack):
            out.append(line)
    return "\n".join(out)


DEAD = re.compile(r"#\s*if\s+0\b|\bif\s*(constexpr\s*)?\(\s*(false|0)\s*\)")


def dead_code(text):
    """Code that can never run: `#if 0`, `if (false)`, and statements after a `return` in its block (a
    cycle-ledger report there would charge nothing)."""
    bad = [m.group(0) for m in DEAD.finditer(text)]
    for m in re.finditer(r"\breturn\b[^;]*;", text):
        before = text[:m.start()].rstrip()
        if before.endswith((")", "else", "=")):  # the body of an unbraced if/else, or `port = return`
            continue
        depth, i = 0, m.end()
        while i < len(text):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and not c.isspace():
                if not re.match(r"(case\b|default\s*:|#)", text[i:]):  # another case label is reachable
                    bad.append(f"code after '{m.group(0)}': {text[i:i + 40]!r}")
                break
            i += 1
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_dead_code(path):
    bad = dead_code(code(path))
    assert not bad, f"{path.name}: {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_heap_exceptions_std_or_floating_point(path):
    found = forbidden_uses(code(path))
    assert not found, f"{path.name} uses {found}"


def _block_end(text, start):
    """The index just past the `}` closing the block whose body starts at `start` (after its `{`)."""
    depth, i = 1, start
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return i


def _function_spans(text):
    """(name, body start, body end) of every function definition; overloads and templates appear once
    per definition."""
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\([^;{}()]*(?:\([^()]*\)[^;{}()]*)*\)\s*(?:const\s*)?(?:noexcept\s*)?\{",
                         text):
        if m.group(1) not in ("if", "for", "while", "switch", "return"):
            yield m.group(1), m.end(), _block_end(text, m.end())


def _functions(text):
    """(name, body) of every function definition, by brace matching."""
    for name, start, end in _function_spans(text):
        yield name, text[start:end]


def _calls(body, name):
    """Does `body` call `name`, plainly or with template arguments (f(...), f<N>(...), f<A, B<C>>(...))?"""
    return re.search(rf"\b{name}\s*(?:<[^;{{}}()]*>\s*)?\(", body) is not None


def recursion_in(text):
    """Functions that call themselves, directly or through others; overloads share a name, so a call
    to any overload counts as a call to all of them (conservative: HLS forbids either)."""
    bodies = {}
    for name, body in _functions(text):
        bodies.setdefault(name, []).append(body)
    calls = {f: {g for g in bodies if any(_calls(b, g) for b in fb)} for f, fb in bodies.items()}

    def reaches(start, target, seen):
        for g in calls[start]:
            if g == target or (g not in seen and (seen.add(g) or reaches(g, target, seen))):
                return True
        return False

    return len(bodies), [f for f in bodies if reaches(f, f, set())]


def test_no_recursion():
    count, recursive = recursion_in("\n".join(code(p) for p in SOURCES))
    assert count > 15, "the function scanner found too little; fix the test"
    assert not recursive, f"recursive functions: {recursive}"


CONSTANT = r"(EDGEMOE_[A-Z_]+|k[A-Z]\w*)"
# A bound is a constant expression, or upto<constant expression>(runtime size): a runtime size
# clamped to a compile-time maximum (kernels/src/hls_types.h).
BOUND = re.compile(rf"^\s*(upto<[\s\d+\-*/()]*({CONSTANT}[\s\d+\-*/()]*)*>\([^;]*\)|[\s\d+\-*/()]*({CONSTANT}[\s\d+\-*/()]*)*)\s*$")


CONFIGS = sorted((KERNELS.parent / "config").glob("*.h"))


def static_constants(text):
    """Names a loop bound may use: constexpr constants, enumerators, and EDGEMOE_ macros whose value is
    itself a constant expression (a name that only looks constant, `int kRows = rows;` or
    `#define EDGEMOE_ROWS rows`, is not one)."""
    names = set(re.findall(r"\bconstexpr\s+[^;=(]*?\b(k[A-Z]\w*)\s*(?:=|\{|\[)", text))
    names |= set(re.findall(r"\btemplate\s*<\s*int\s+(k[A-Z]\w*)\b", text))  # a non-type template parameter
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        names |= set(re.findall(r"\b(k[A-Z]\w*)\b", body))
    macros = dict(re.findall(r"#define\s+(EDGEMOE_\w+)[ \t]+([^\n]+)", text))
    changed = True
    while changed:
        changed = False
        for name, value in macros.items():
            tokens = re.findall(r"[A-Za-z_]\w*", value)
            if name not in names and all(t in names for t in tokens) and re.fullmatch(r"[\s\w+\-*/()<>]*", value):
                names.add(name)
                changed = True
    return names


def all_constants():
    return static_constants("\n".join(code(p) for p in SOURCES + CONFIGS))


def unbounded_loops(text, constants=None):
    """Loops whose trip count has no compile-time maximum. A `for` must compare its variable with a
    static bound (a constant expression of `constants`, or upto<constant>(runtime size)); counting
    down, its start must be a constant expression too (a runtime start would be an unbounded trip
    count)."""
    constants = static_constants(text) if constants is None else constants
    bad = []
    for m in re.finditer(r"\bfor\s*\(([^;]*);([^;]*);([^)]*)\)", text):
        init, condition, step = (g.strip() for g in m.groups())
        parts = re.split(r"<=|>=|<|>", condition, maxsplit=1)
        if len(parts) != 2 or not parts[0].strip() or not BOUND.match(parts[1]):
            bad.append(f"for ({init}; {condition}; {step}): condition is not a comparison with a static bound")
            continue
        bound = re.sub(r"\([^()]*\)\s*$", "", parts[1]) if "upto<" in parts[1] else parts[1]
        runtime = [name for name in re.findall(CONSTANT, bound) if name not in constants]
        if runtime:
            bad.append(f"for ({init}; {condition}; {step}): {runtime} only look constant (not constexpr, an "
                       "enumerator or a constant macro)")
            continue
        if re.search(r"--|-=", step) or re.search(r"<=|>=|<|>", condition).group(0).startswith(">"):
            start = init.split("=", 1)[-1] if "=" in init else ""
            if not BOUND.match(start) or not start.strip():
                bad.append(f"for ({init}; {condition}; {step}): counts down from a runtime start")
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_loop_has_a_static_bound(path):
    bad = unbounded_loops(code(path), all_constants())
    assert not bad, f"{path.name}: {bad}"


# Each scanner must see what it forbids: sources that break one rule each.
BROKEN = {
    "while": ("void f(int n) { while (n--) { x(); } }", "while/do"),
    "do": ("void f(int n) { do { x(); } while (--n); }", "while/do"),
    "float": ("fm_t g(fm_t v) { float f = v.to_float(); return f; }", "floating point"),
    "double": ("void f() { double d = 0; }", "floating point"),
    "new": ("void f() { int* p = new int[4]; }", "heap"),
    "std": ("void f() { std::vector<int> v; }", "standard library"),
    "to_double": ("fm_t g(fm_t v) { return fm_t(v.to_double() * 2); }", "floating point"),
    "auto from a real": ("void f() { auto d = 0.1 * 3; }", "floating point"),
    "float literal": ("fm_t g() { return fm_t(0.5f); }", "floating point"),
    "math.h": ("#include <math.h>\nvoid f() {}", "floating point"),
    "unqualified exp": ("fm_t g(fm_t v) { return fm_t(exp(v)); }", "floating point"),
    "_Float16": ("void f() { _Float16 h = 1; }", "floating point"),
    "alloca": ("void f(int n) { char* p = (char*)alloca(n); }", "alloca"),
    "std alias": ("namespace s = std;\nvoid f() { s::array<int, 4> a; }", "standard library"),
    "using namespace std": ("using namespace std;\nvoid f() { array<int, 4> a; }", "standard library"),
    "function pointer": ("int f(int n);\nint (*fp)(int) = f;\nint f(int n) { return n ? fp(n - 1) : 0; }",
                         "function pointer"),
}
LOOPS = {
    "forever": "void f() { for (;;) { x(); } }",
    "runtime bound": "void f(int n) { for (int i = 0; i < n; ++i) { x(); } }",
    "count down from runtime": "void f(int n) { for (int i = n; i > 0; --i) { x(); } }",
    "no comparison": "void f(int* p) { for (int i = 0; p[i]; ++i) { x(); } }",
    "runtime kRows": "void f(int rows) { const int kRows = rows; for (int i = 0; i < kRows; ++i) { x(); } }",
    "define of a runtime name": "#define EDGEMOE_ROWS rows\nvoid f(int rows) { for (int i = 0; i < EDGEMOE_ROWS; ++i) {} }",
    "upto of a runtime name": "void f(int n, int m) { const int kM = m; for (int i = 0; i < upto<kM>(n); ++i) {} }",
}
DEAD_CODE = {
    "if 0": "void f() {\n#if 0\n  ledger::loop(kUnitQkv, 1, kII, 1);\n#endif\n}",
    "if false": "void f() { if (false) ledger::loop(kUnitQkv, 1, kII, 1); }",
    "after return": "void f() { x(); return;\n  ledger::loop(kUnitQkv, 1, kII, 1);\n}",
}
RECURSIVE = {
    "direct": "int f(int n) { return n ? f(n - 1) : 0; }",
    "template call": "template <int N> int f() { return f<N - 1>(); }",
    "overload": "int f(int n) { return f(n, 1); }\nint f(int n, int m) { return g(n); }\nint g(int n) { return f(n); }",
    "mutual": "int a(int n) { return b(n); }\nint b(int n) { return a(n - 1); }",
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_rules_catch_what_they_forbid(case):
    source, what = BROKEN[case]
    assert any(what in found for found in forbidden_uses(source)), case


@pytest.mark.parametrize("case", sorted(LOOPS))
def test_loop_rule_catches_unbounded_loops(case):
    assert unbounded_loops(LOOPS[case]), case


def test_loop_rule_accepts_bounded_loops():
    ok = ("#define EDGEMOE_MAX_DIM 768\n#define EDGEMOE_MAX_TOKENS (EDGEMOE_MAX_DIM + 1)\nconstexpr int kLanes = 16;\n"
          "enum Mode { kFirst, kLast };\n"
          "for (int i = 0; i < EDGEMOE_MAX_DIM; ++i) {} for (int r = first; r < upto<EDGEMOE_MAX_TOKENS>(rows); ++r) {}"
          " for (int bit = 24; bit >= 0; --bit) {} for (int i = 0; i < 2 * kLanes + 1; ++i) {}"
          " for (int m = 0; m < kLast; ++m) {}")
    assert unbounded_loops(ok) == []


@pytest.mark.parametrize("case", sorted(DEAD_CODE))
def test_dead_code_rule_catches_dead_ledger_reports(case):
    assert dead_code(DEAD_CODE[case]), case


def test_dead_code_rule_accepts_guarded_returns():
    ok = ("int f(int n) { if (n < 0) return 0; else return 1; }\n"
          "int g(int k) { switch (k) { case 0: return 1; case 1: return 2; default: return 3; } }\n"
          "#pragma HLS INTERFACE mode = s_axilite port = return\n")
    assert dead_code(ok) == []


@pytest.mark.parametrize("case", sorted(RECURSIVE))
def test_recursion_rule_catches_recursion(case):
    _, recursive = recursion_in(RECURSIVE[case])
    assert recursive, case


def test_kernel_declaration_names_follow_the_interface_list():
    """kernel_interface.h is the one description of the top kernel's arguments; the compiler checks the
    declaration's types against it (emu_device.cpp), this checks the names (XRT binds by name)."""
    listed = re.findall(r"\b(?:BUFFER|SCALAR)\((\w+),", code(KERNELS / "kernel_interface.h").split("namespace")[0])
    declaration = code(KERNELS / "m3vit_backbone.h")
    params = declaration[declaration.index("m3vit_backbone("):declaration.index(");")]
    declared = [p.strip().split()[-1].lstrip("*") for p in params[len("m3vit_backbone("):].split(",")]
    assert declared == listed
    assert len(listed) == 31 and listed[0] == "images" and listed[-1] == "head_stages"


# --- schedules: the constants the pragmas and the latency model share (kernels/src/schedule.h) ---

def schedule_violations(text):
    """Pipelined loops whose II is a literal (it must be a schedule.h constant, which the cycle ledger
    reports), variable-bound loops (upto<>) without LOOP_TRIPCOUNT, and functions with a pipelined
    loop that report nothing to the cycle ledger (kernels/src/cycle_ledger.h)."""
    bad = []
    for m in re.finditer(r"#pragma\s+HLS\s+PIPELINE(?P<rest>[^\n]*)", text, flags=re.I):
        ii = re.search(r"II\s*=\s*(\w+)", m.group("rest"), flags=re.I)
        if not ii or not re.fullmatch(r"k[A-Z]\w*", ii.group(1)):
            bad.append(f"PIPELINE{m.group('rest')}: II must name a schedule.h constant")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"\bfor\s*\([^;]*;[^;]*upto<", line) and not any(
                "LOOP_TRIPCOUNT" in l for l in lines[i + 1:i + 4]):
            bad.append(f"{line.strip()}: a variable-bound loop without LOOP_TRIPCOUNT")
    for name, body in _functions(text):
        if re.search(r"#pragma\s+HLS\s+PIPELINE", body, flags=re.I) and not re.search(r"\bloop\(", body):
            bad.append(f"{name}: pipelined loops but no report to the cycle ledger")
    return bad


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name not in ("build_record.h",)], ids=lambda p: p.name)
def test_pipelined_loops_share_their_schedule_with_the_model(path):
    text = code(path)
    if path.name == "m3vit_backbone.cpp":  # the build query's record write is not part of an inference
        text = re.sub(r"void write_build_record\(.*?\n\}\n", "", text, flags=re.S)
    bad = schedule_violations(text)
    assert not bad, f"{path.name}: {bad}"


def test_schedule_rule_catches_what_it_forbids():
    literal = "void f(int n) {\n  for (int i = 0; i < upto<kMax>(n); ++i) {\n#pragma HLS PIPELINE II = 1\n#pragma HLS LOOP_TRIPCOUNT max = kMax\n  }\n  ledger::loop(kUnitQkv, n, kII, 1);\n}"
    untracked = "void f(int n) {\n  for (int i = 0; i < upto<kMax>(n); ++i) {\n#pragma HLS PIPELINE II = kII\n  }\n}"
    assert any("schedule.h constant" in b for b in schedule_violations(literal))
    lowercase = "void f(int n) {\n  for (int i = 0; i < kMax; ++i) {\n#pragma hls pipeline ii=1\n  }\n}"
    found = schedule_violations(lowercase)
    assert any("schedule.h constant" in b for b in found) and any("cycle ledger" in b for b in found)
    found = schedule_violations(untracked)
    assert any("LOOP_TRIPCOUNT" in b for b in found) and any("cycle ledger" in b for b in found)
    ok = literal.replace("II = 1", "II = kII")
    assert schedule_violations(ok) == []


# --- m_axi read-modify-write: a loop that reads and writes one bundle must justify DEPENDENCE ----

MAXI = re.findall(r"INTERFACE m_axi port = (\w+)", (KERNELS / "m3vit_backbone.cpp").read_text())


def _loop_bodies(text):
    """(start, body) of every `for` loop, by brace matching."""
    for m in re.finditer(r"\bfor\s*\([^;]*;[^;]*;[^)]*\)\s*\{", text):
        yield m.start(), text[m.end():_block_end(text, m.end())]


def unjustified_read_modify_writes(raw):
    """Pipelined loops that read and write the same m_axi buffer (directly, or through load_*/store_*
    helpers) without `DEPENDENCE ... inter ... dependent = false` in the loop and a comment with the
    words "DEPENDENCE proof" just above it: HLS would otherwise serialise iterations on the bus."""
    bad = []
    text = re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), raw)  # same offsets, comments blanked
    for start, body in _loop_bodies(text):
        head = re.sub(r"\bfor\s*\([^)]*\)\s*\{.*", "", body, flags=re.S)  # before any nested loop
        if not re.search(r"#pragma\s+HLS\s+PIPELINE", head, flags=re.I):
            continue  # not pipelined itself (a nested loop may be: it is checked on its own)
        own = body  # nested loops of a pipelined loop are unrolled into its body
        reads = {n for n in MAXI if re.search(rf"\b{n}\s*\[[^\]]*\](?!\s*=[^=])", own)}
        writes = {n for n in MAXI if re.search(rf"\b{n}\s*\[[^\]]*\]\s*=[^=]", own)}
        def passed_to(kind):  # m_axi buffers handed to load_*/store_* helpers
            args = " ".join(re.findall(rf"\b{kind}_\w+\s*\(([^;]*)\)", own))
            return {n for n in MAXI if re.search(rf"\b{n}\b", args)}

        both = (reads | passed_to("load")) & (writes | passed_to("store"))
        if not both:
            continue
        declared = {n for n in both if re.search(rf"#pragma\s+HLS\s+DEPENDENCE\s+variable\s*=\s*{n}\b[^\n]*"
                                                 r"type\s*=\s*inter[^\n]*dependent\s*=\s*false", own, flags=re.I)}
        above = raw[max(0, start - 2000):start]
        if declared != both or "DEPENDENCE proof" not in above:
            line = raw.count("\n", 0, start) + 1
            bad.append(f"line {line}: a pipelined loop reads and writes {sorted(both)}; missing "
                       f"DEPENDENCE ... inter dependent = false for {sorted(both - declared)} or a 'DEPENDENCE proof'"
                       " comment above it")
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_maxi_read_modify_writes_are_justified(path):
    assert len(MAXI) >= 8, "the m_axi ports were not found in m3vit_backbone.cpp; fix the test"
    bad = unjustified_read_modify_writes(path.read_text())
    assert not bad, f"{path.name}: {bad}"


def test_read_modify_write_rule_catches_what_it_forbids():
    loop = ("void f(fm_word_t* x, int n) {{\n{comment}  for (int i = 0; i < upto<kMax>(n); ++i) {{\n"
            "#pragma HLS PIPELINE II = kII\n{pragma}    x[at(i)] = x[at(i)] + 1;\n  }}\n}}\n")
    pragma = "#pragma HLS DEPENDENCE variable = x type = inter dependent = false\n"
    proof = "  // DEPENDENCE proof: at() is injective\n"
    assert unjustified_read_modify_writes(loop.format(comment="", pragma=""))
    assert unjustified_read_modify_writes(loop.format(comment="", pragma=pragma))  # no proof
    assert unjustified_read_modify_writes(loop.format(comment=proof, pragma=""))   # no pragma
    assert unjustified_read_modify_writes(loop.format(comment=proof, pragma=pragma)) == []
    helpers = loop.replace("x[at(i)] = x[at(i)] + 1;", "w = load_word(x, i); store_word(x, i, w);")
    assert unjustified_read_modify_writes(helpers.format(comment=proof, pragma=pragma.replace("= x", "= y")))
    assert unjustified_read_modify_writes(helpers.format(comment="", pragma=""))


# --- bursts: every memory loop names its transfer class, and a declared burst has the addresses HLS needs

def _ledger_calls(text):
    for m in re.finditer(r"(?:edgemoe_)?ledger::loop\((.*?)\);", text, flags=re.S):
        yield m.start(), m.end(), " ".join(m.group(1).split())


def unclassified_ports(text):
    """Ports in a ledger report that are not wrapped in burst(...) or single_beat(...)."""
    bad = []
    for _, _, call in _ledger_calls(text):
        bare = re.sub(r"\b(?:burst|single_beat)\((?:edgemoe_)?(?:ledger::)?[\w.]+\)", "", call)
        for port in re.findall(r"(?:edgemoe_)?(?:ledger::)?kPort\w+|\b\w+\.\w*port\b", bare):
            bad.append(f"{port} in loop({call[:60]}...): name its transfer class, burst(...) or single_beat(...)")
    return bad


def _enclosing_signature(text, pos):
    """The parameter list of the function whose body holds `pos`."""
    best = None
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)\s*(?:const\s*)?\{", text[:pos]):
        if m.group(1) not in ("for", "if", "while", "switch", "return"):
            best = m
    return best.group(2) if best else ""


def false_bursts(text):
    """Reports that declare burst(...) for a loop HLS cannot burst: the next pipelined `for` after the
    report must read or write each pointer parameter at `base + i` or `i` (i its own loop variable),
    outside any condition."""
    bad = []
    for start, end, call in _ledger_calls(text):
        if not re.search(r"\bburst\(", call):
            continue
        pointers = re.findall(r"\*\s*(\w+)\s*(?:,|$)", _enclosing_signature(text, start) + ",")
        loop = re.search(r"\bfor\s*\(\s*(?:int|long)\s+(\w+)\s*=[^;]*;[^;]*;[^)]*\)\s*\{", text[end:])
        if not loop:
            bad.append(f"loop({call[:50]}...): declared burst(...) but no loop follows")
            continue
        var = loop.group(1)
        body = text[end + loop.end():_block_end(text, end + loop.end())]
        if not re.search(r"#pragma\s+HLS\s+PIPELINE", body, flags=re.I):
            bad.append(f"loop over {var}: declared burst(...) but not pipelined")
        affine = re.compile(rf"^\s*(?:[\w.]+\s*\+\s*)?{var}\s*$|^\s*{var}\s*\+\s*[\w.]+\s*$")
        accesses = list(re.finditer(rf"\b({'|'.join(map(re.escape, pointers)) or '$^'})\s*\[([^\]]+)\]", body))
        if not accesses:
            bad.append(f"loop over {var}: declared burst(...) but it indexes no pointer argument directly")
        for access in re.finditer(rf"\b({'|'.join(map(re.escape, pointers)) or '$^'})\s*\[([^\]]+)\]", body):
            index = access.group(2)
            statement = re.split(r"[;{}]", body[:access.start()])[-1]
            opened_ifs = len(re.findall(r"\bif\s*\(", body[:access.start()])) - len(re.findall(r"\bif\s*\([^{;]*\)\s*[^{;]*;", body[:access.start()]))
            conditional = "?" in statement or re.search(r"\bif\s*\(", statement) or opened_ifs > 0
            if not affine.match(index) or conditional:
                bad.append(f"{access.group(0)} in the loop over {var}: declared burst(...) but the address is "
                           f"{'conditional' if conditional else 'not base + ' + var}: HLS issues single beats")
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_memory_loops_name_their_transfers_and_bursts_are_real(path):
    text = code(path)
    bad = unclassified_ports(text) + false_bursts(text)
    assert not bad, f"{path.name}: {bad}"


def test_burst_rules_catch_what_they_forbid():
    loop = ("void f(const fm_word_t* src, int n, long base, const short* idx) {{\n"
            "  ledger::loop(kUnitQkv, n, kII, 1, {port}, n * 64, 64);\n"
            "  for (int i = 0; i < upto<kMax>(n); ++i) {{\n#pragma HLS PIPELINE II = kII\n    {body}\n  }}\n}}\n")
    ok = loop.format(port="ledger::burst(ledger::kPortAct)", body="v[i] = src[base + i];")
    assert unclassified_ports(ok) == [] and false_bursts(ok) == []
    assert unclassified_ports(loop.format(port="ledger::kPortAct", body="v[i] = src[i];"))
    assert false_bursts(loop.format(port="ledger::burst(ledger::kPortAct)", body="v[i] = read_word(src, i);"))
    for body in ("v[i] = src[idx[i]];", "v[i] = src[at++];", "if (i < m) v[i] = src[base + i];",
                 "v[i] = i < m ? src[base + i] : fm_word_t();", "if (i < m) {\n v[i] = src[base + i];\n }"):
        assert false_bursts(loop.format(port="ledger::burst(ledger::kPortAct)", body=body)), body
        assert false_bursts(loop.format(port="ledger::single_beat(ledger::kPortAct)", body=body)) == [], body


# --- ROMs: one per lookup instance (src/fixed_math.h) ----------------------------------------------

def rom_violations(text):
    """A table is a ROM of two ports. Each must be a static const local of a lookup function that is
    never inlined (so every call site and every unrolled copy of one has its own ROM), read at most
    twice per call (directly, or through a helper that reads its table argument); a constant array
    anywhere else would be one ROM shared by all its readers."""
    bad = []
    functions = list(_functions(text))
    inside = [(start, end) for _, start, end in _function_spans(text)]
    for m in re.finditer(r"\b(?:static\s+)?(?:const|constexpr)\s+(?:unsigned|int|short|long)[\w\s]*?\b(\w+)\s*\[[^\]]*\]\s*=\s*\{",
                         text):
        if any(a <= m.start() < b for a, b in inside):
            continue
        # At namespace scope a table is one ROM for every reader. Allowed only where its readers are in
        # sight: indexed directly in a pipelined loop, at most twice an iteration (the build record's copy
        # loop); never read by a function that an unrolled loop could call many times a cycle.
        table = m.group(1)
        for name, body in functions:
            reads = list(re.finditer(rf"\b{table}\s*\[", body))
            if re.search(rf"\b{table}\b(?!\s*\[)", body):
                bad.append(f"{table}: a constant table at namespace scope passed on by {name}() (its readers out of "
                           "sight: one ROM for every call)")
                continue
            if not reads:
                continue
            loops = [b for _, b in _loop_bodies(body) if re.search(r"#pragma\s+HLS\s+PIPELINE", b, flags=re.I)]
            in_loop = [b for b in loops if re.search(rf"\b{table}\s*\[", b)]
            if not in_loop or len(re.findall(rf"\b{table}\s*\[", in_loop[0])) > 2:
                bad.append(f"{table}: a constant table at namespace scope read by {name}() outside a pipelined loop "
                           "of its own (one ROM for every call: give the lookup its own ROM)")
    helper_reads = {}
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(([^;{}()]*)\)\s*\{", text):
        pointer = re.search(r"const\s+unsigned\s*\*\s*(\w+)", m.group(2))
        if pointer:
            body = next((b for n, b in functions if n == m.group(1)), "")
            helper_reads[m.group(1)] = len(re.findall(rf"\b{pointer.group(1)}\s*\[", body))
    for name, body in functions:
        for rom in re.findall(r"\bstatic\s+const\s+unsigned\s+(\w+)\s*\[[^\]]*\]\s*=\s*\{\s*EDGEMOE_TABLE_\w+\s*\}", body):
            if not re.search(r"#pragma\s+HLS\s+INLINE\s+off", body, flags=re.I):
                bad.append(f"{name}: owns ROM {rom} but may be inlined (INLINE off gives each call site its own)")
            uses = re.sub(rf"static\s+const\s+unsigned\s+{rom}\s*\[[^\]]*\]", "", body)  # not the declaration
            reads = len(re.findall(rf"\b{rom}\s*\[", uses))
            for helper, count in helper_reads.items():
                reads += count * len(re.findall(rf"\b{helper}\s*(?:<[^;()]*>)?\s*\(\s*{rom}\b", uses))
            if reads > 2:
                bad.append(f"{name}: reads ROM {rom} {reads} times a call; a ROM has two ports")
    return bad


def test_every_table_is_a_rom_of_its_own_lookup():
    text = "\n".join(code(p) for p in SOURCES)
    assert len(re.findall(r"static const unsigned kRom\[", text)) == 4, "the four lookups were not found; fix the test"
    bad = rom_violations(text)
    assert not bad, bad
    assert "EDGEMOE_TABLE_" in code(KERNELS / "tables.h") and not re.search(r"\[\d+\]\s*=\s*\{", code(KERNELS / "tables.h"))


def test_rom_rule_catches_shared_and_overused_roms():
    good = ("inline int look(int i) {\n#pragma HLS INLINE off\n  static const unsigned kRom[4] = {EDGEMOE_TABLE_X};\n"
            "  return kRom[i] + kRom[i + 1];\n}\n")
    assert rom_violations(good) == []
    shared = "static const unsigned kTable[4] = {1, 2, 3, 4};\ninline int look(int i) { return kTable[i]; }\n"
    assert any("namespace scope" in b for b in rom_violations(shared))
    passed = ("static const unsigned kTable[4] = {1, 2, 3, 4};\ninline int lerp(const unsigned* t, int i) { return t[i]; }\n"
              "inline int look(int i) { return lerp(kTable, i); }\n")
    assert any("passed on" in b for b in rom_violations(passed))
    copied = ("constexpr unsigned kRecord[4] = {1, 2, 3, 4};\nvoid copy(unsigned* out) {\n"
              "  for (int i = 0; i < 4; ++i) {\n#pragma HLS PIPELINE II = kII\n    out[i] = kRecord[i];\n  }\n}\n")
    assert rom_violations(copied) == []
    inlined = good.replace("#pragma HLS INLINE off\n", "")
    assert any("may be inlined" in b for b in rom_violations(inlined))
    three = good.replace("kRom[i] + kRom[i + 1]", "kRom[i] + kRom[i + 1] + kRom[0]")
    assert any("3 times" in b for b in rom_violations(three))
    helper = ("inline int lerp(const unsigned* table, int i) { return table[i] - table[i + 1]; }\n" +
              good.replace("kRom[i] + kRom[i + 1]", "lerp(kRom, i) + kRom[0]"))
    assert any("3 times" in b for b in rom_violations(helper))
