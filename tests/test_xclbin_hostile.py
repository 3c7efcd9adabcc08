"""Hostile xclbins under XRT's noop shim: the kernel XML (parsed by expat with limits, re-emitted for
XRT: csrc/backends/fpga/kernel_xml.h), the container (read once, bounded: xclbin_check.h) and what
reaches XRT. Every refusal is a ValueError naming the file; nothing may crash, hang or balloon."""
import os
import re
import resource
import struct
import time

import pytest
import torch

import edgemoe
from edgemoe import _C, synthetic
import xclbin_edit as xe
from xrt_noop import XRT_LIBDIR

TINY = synthetic.preset("tiny")
pytestmark = pytest.mark.skipif(XRT_LIBDIR is None, reason="this build has no XRT (the Makefile's build has)")
HOSTILE_NAME = b"((a*)*)*" + b"a" * 40 + b"b"  # a regex that backtracks forever, were it ever compiled


@pytest.fixture(scope="module")
def tiny_state():
    return dict(synthetic.seeded_model(TINY, 0).state_dict())


@pytest.fixture(scope="module")
def good(noop):
    return open(noop, "rb").read()


def _load(tmp_path, data: bytes, state, name="case.xclbin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path, edgemoe.Model(TINY, state, "fpga", xclbin=str(path))


def _refused(tmp_path, data: bytes, state, match: str, name="case.xclbin"):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as refused:
        edgemoe.Model(TINY, state, "fpga", xclbin=str(path))
    assert str(refused.value).startswith(f"xclbin '{path}'"), str(refused.value)
    return str(refused.value)


def _insert_before_our_kernel(xml: bytes, markup: bytes) -> bytes:
    at = xml.index(b'<kernel name="m3vit_backbone"')
    return xml[:at] + markup + xml[at:]


# Markup a hand-written scan reads differently from a real XML parser (the differential that let a
# regex-hostile kernel name reach XRT): each hides a second <kernel> whose name XRT would compile.
DIFFERENTIAL = {
    "gt-in-value": b'<kernel vlnv="a>b" name="%s"/>',
    "selfclose-in-value": b'<kernel vlnv="a/>" name="%s"/>',
    "tab-before-name": b'<kernel\tname="%s"/>',
    "newline-before-name": b'<kernel\n  name="%s"/>',
    "name-inside-single-quotes": b"<kernel vlnv='x name=\"m3vit_backbone\"' name=\"%s\"/>",
    "closing-tags-in-comment": b'<!-- </core></device></platform></project> --><kernel name="%s"/>',
    "cdata-lookalike": b'<kernel name="%s"><![CDATA[</kernel>]]></kernel>',
    "entity-built-name": b'<kernel name="&#40;&#40;a*)*)*b"/>',
}


@pytest.mark.parametrize("case", sorted(DIFFERENTIAL))
def test_markup_tricks_cannot_hide_a_kernel_name(noop, good, tiny_state, tmp_path, case):
    markup = DIFFERENTIAL[case].replace(b"%s", HOSTILE_NAME)
    data = xe.with_kernel_xml(good, _insert_before_our_kernel(xe.kernel_xml(good), markup))
    _refused(tmp_path, data, tiny_state, r"names a kernel '\(\(a\*\)\*\)\*.*not an identifier")


# The same markup carrying nothing hostile is XML like any other: it loads, and XRT is handed the
# canonical form, which reads back to itself.
BENIGN = {
    "comments-and-pi": (b'<!-- a comment </kernel> --><?tool x?>', b""),
    "single-quotes-and-tabs": (b"<extra\ta='1 > 0'\n b='\"q\"'/>", b""),
    "cdata-and-entities": (b"<extra note=\"a &amp; b &lt; c\"><![CDATA[<not markup>]]> &#65;</extra>", b""),
}


@pytest.mark.parametrize("case", sorted(BENIGN))
def test_benign_markup_loads_and_reaches_xrt_canonical(noop, good, tiny_state, tmp_path, case):
    markup, _ = BENIGN[case]
    data = xe.with_kernel_xml(good, _insert_before_our_kernel(xe.kernel_xml(good), markup))
    path, model = _load(tmp_path, data, tiny_state)
    assert model(torch.zeros(1, 3, *TINY.image_size), task=model.tasks[0]).shape[0] == 1
    handed = _C.checked_xclbin(str(path))
    xml = xe.kernel_xml(handed)
    assert b"<!--" not in xml and b"<?tool" not in xml and b"CDATA" not in xml and b"\t" not in xml
    again = tmp_path / "again.xclbin"
    again.write_bytes(handed)
    assert _C.checked_xclbin(str(again)) == handed  # canonical: a fixed point


@pytest.mark.parametrize("make_xml, match", [
    (lambda xml: xml.replace(b"<project", b"<!DOCTYPE p [<!ENTITY a 'aaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><project"),
     "has a DOCTYPE declaration"),
    (lambda xml: _insert_before_our_kernel(xml, b"<n>" * 100_000 + b"</n>" * 100_000), "nests deeper than 32"),
    (lambda xml: _insert_before_our_kernel(xml, b"<e/>" * 200_000), "more than 16384 elements"),
    (lambda xml: _insert_before_our_kernel(xml, b'<kernel name="' + b"k" * 900_000 + b'"/>'), "attribute name of 900000 bytes"),
    (lambda xml: _insert_before_our_kernel(xml, b'<kernel name="' + b"k" * 65 + b'"/>'), "not an identifier"),
    (lambda xml: xml.replace(b'name="x"', b'name="\xff\xfe"'), r"not well-formed XML .*name=\"\\xff"),
    (lambda xml: xml.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(b'name="x"', b'name="\xe9"'),
     "not well-formed XML"),
    (lambda xml: xml + b"<second/>", "not well-formed XML"),
    (lambda xml: xml.replace(b"<project", b"<pro.ject").replace(b"</project>", b"</pro.ject>"), "not an ASCII name"),
    (lambda xml: xml.replace(b'vlnv="', b'vlnv="&#1;'), "not well-formed XML"),
    (lambda xml: xml.replace(b'vlnv="', b'vlnv="&#9;'), "holding a control character"),
    (lambda xml: xml.replace(b'<core ', b'<core name="b"/><core '), "has two <core> elements"),
    (lambda xml: xml.replace(b"<project", b"<other").replace(b"</project>", b"</other>"), "root element <other>"),
], ids=["doctype-entities", "deep", "many", "huge-name", "long-name", "not-utf8", "latin1", "two-roots", "dotted",
        "control-ref", "tab-ref", "two-cores", "root"])
def test_kernel_xml_limits(noop, good, tiny_state, tmp_path, make_xml, match):
    _refused(tmp_path, xe.with_kernel_xml(good, make_xml(xe.kernel_xml(good))), tiny_state, match)


@pytest.mark.parametrize("old, new, match", [
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="1" id="one"',
     r"<arg> 1 'weights': id='one' is not a number"),
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="1" id="01"',
     r"id='01' is not a number"),  # std::stoul(.., 0) reads octal
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="0x1" id="1"',
     r"addressQualifier='0x1' is not a number \(decimal digits\)"),
    (b'name="weights" addressQualifier="1" id="1"', b'name="weights" addressQualifier="1" id="70000"',
     r"id='70000' is not an argument index"),
    (b'offset="0x1C"', b'offset="-0x1C"', r"'weights': offset='-0x1C' is not a number"),
    (b'offset="0x1C"', b'offset="0x10000000000000000"', r"offset='0x10000000000000000' is not a number"),
    (b'size="0x8" offset="0x1C"', b'offset="0x1C"', r"'weights' has no size attribute"),
    (b'mode="slave" range="0x1000"', b'mode="slave" range="lots"', r"<port> 1: range='lots' is not a number"),
    (b'mode="slave"', b'', r"<port> 1 has no mode attribute"),
    (b'<compileWorkGroupSize x="1"', b'<compileWorkGroupSize x="one"', r"<compileWorkGroupSize>: x='one'"),
    (b'frequency="300.000000MHz"', b'frequency="fast"', r"frequency='fast' is not a frequency"),
    (b'<string_table/>', b'<string_table><format_string id="x" value="v"/></string_table>', r"<format_string>: id='x'"),
    (b'workGroupSize="1"', b'workGroupSize="1" mailbox="sideways"', r"mailbox='sideways' is none of"),
    (b'<instance name="m3vit_backbone_1">', b'<instance name="cu:{a,b}">', r"names an instance 'cu:\{a,b\}'"),
], ids=["id-word", "id-octal", "qualifier-hex", "id-huge", "offset-negative", "offset-65-bits", "size-missing",
        "range-word", "mode-missing", "workgroup", "clock", "format-string", "mailbox", "instance-regex"])
def test_xml_fields_are_named(noop, good, tiny_state, tmp_path, old, new, match):
    xml = xe.kernel_xml(good)
    assert xml.count(old) == 1, old
    _refused(tmp_path, xe.with_kernel_xml(good, xml.replace(old, new)), tiny_state, match)


# --- the container ---------------------------------------------------------------------------------

def test_a_fifo_or_directory_is_refused_without_blocking(noop, tiny_state, tmp_path):
    fifo = tmp_path / "pipe.xclbin"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(fifo))  # would block forever in open()
    with pytest.raises(ValueError, match="is not a regular file"):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(tmp_path))
    for path in (fifo, tmp_path):  # the native reader too: a FIFO swapped in after Python's check
        with pytest.raises(ValueError, match=f"xclbin '{path}': is not a regular file"):
            _C.checked_xclbin(str(path))


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_huge_files_are_refused_before_they_are_read(noop, good, tiny_state, tmp_path):
    """A sparse file claiming 2 GiB and a 14 MiB kernel XML: refused early, in bounded time and memory."""
    before = _peak_rss_bytes()
    sparse = tmp_path / "sparse.xclbin"
    with open(sparse, "wb") as f:
        head = bytearray(good)
        struct.pack_into("<Q", head, xe.LENGTH_AT, 2 << 30)
        f.write(head)
        f.truncate(2 << 30)
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"is 2048 MiB, larger than any xclbin for edgemoe's boards \(256 MiB\)"):
        edgemoe.Model(TINY, tiny_state, "fpga", xclbin=str(sparse))
    huge_xml = xe.with_kernel_xml(good, b"<project>" + b"<e/>" * (14 << 18) + b"</project>")  # 14 MiB, 3.7M elements
    _refused(tmp_path, huge_xml, tiny_state, r"EMBEDDED_METADATA is 14680083 bytes, more than the 1024 KiB")
    assert time.monotonic() - start < 5
    assert _peak_rss_bytes() - before < 100 << 20  # the 14 MiB case itself, written from Python, is most of it


@pytest.mark.parametrize("edit, match", [
    (lambda d: xe.with_section(d, xe.AIE_METADATA, b"{}"), r"kind 25 \(AIE_METADATA\), which no build"),
    (lambda d: xe.with_section(d, xe.SOFT_KERNEL, b"\0" * 64), r"kind 23 \(SOFT_KERNEL\)"),
    (lambda d: xe.with_section(d, 99, b"x"), r"kind 99 \(unknown\)"),
    (lambda d: _overlapping(d), "overlap"),
    (lambda d: _signed(d), "is signed"),
    (lambda d: xe.with_section(d, xe.EMBEDDED_METADATA, xe.kernel_xml(d)), "section kind 2 appears twice"),
], ids=["aie", "soft-kernel", "unknown-kind", "overlap", "signed", "two-xmls"])
def test_container_edits(noop, good, tiny_state, tmp_path, edit, match):
    _refused(tmp_path, edit(good), tiny_state, match)


def _overlapping(data: bytes) -> bytes:
    out = bytearray(data)
    first = xe.SECTION.unpack_from(out, xe.SECTIONS_AT)
    second = xe.SECTION.unpack_from(out, xe.SECTIONS_AT + xe.SECTION.size)
    xe.SECTION.pack_into(out, xe.SECTIONS_AT + xe.SECTION.size, second[0], second[1], first[2] + 8, second[3])
    return bytes(out)


def _signed(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<i", out, xe.SIGNATURE_AT, 256)
    return bytes(out)


def test_a_bitstream_section_reaches_xrt_byte_for_byte(noop, good, tiny_state, tmp_path):
    """Sections edgemoe does not interpret are passed on unchanged, only moved."""
    payload = bytes(range(256)) * 1000 + b"tail"
    path, _ = _load(tmp_path, xe.with_section(good, xe.BITSTREAM, payload, b"bit"), tiny_state)
    handed = xe.sections(_C.checked_xclbin(str(path)))
    assert [p for k, _, p in handed if k == xe.BITSTREAM] == [payload]
    assert re.search(rb'<kernel name="m3vit_backbone"', xe.kernel_xml(_C.checked_xclbin(str(path))))
