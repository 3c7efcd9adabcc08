"""An xclbin container (XRT's xclbin.h, `struct axlf`) taken apart and put back together, for tests
that edit one section and keep the rest of the file consistent."""
from __future__ import annotations

import struct

SECTIONS_AT = 456          # offsetof(axlf, m_sections)
LENGTH_AT = 304            # axlf.m_header.m_length
SIGNATURE_AT = 8           # axlf.m_signature_length
COUNT_AT = 448             # axlf.m_header.m_numSections
SECTION = struct.Struct("<I16s4xQQ")  # axlf_section_header: kind, name, offset, size (40 bytes)

BITSTREAM, EMBEDDED_METADATA, MEM_TOPOLOGY, CONNECTIVITY, IP_LAYOUT = 0, 2, 6, 7, 8
CLOCK_FREQ_TOPOLOGY, BUILD_METADATA, SOFT_KERNEL, AIE_METADATA = 11, 14, 23, 25


def sections(data: bytes) -> list:
    """[(kind, name, payload)] in table order."""
    count = struct.unpack_from("<I", data, COUNT_AT)[0]
    out = []
    for i in range(count):
        kind, name, offset, size = SECTION.unpack_from(data, SECTIONS_AT + i * SECTION.size)
        out.append((kind, name, data[offset:offset + size]))
    return out


def build(data: bytes, new_sections: list) -> bytes:
    """`data`'s header with `new_sections` laid out after the table, 8-byte aligned, as xclbinutil does."""
    head = bytearray(data[:SECTIONS_AT])
    table_end = SECTIONS_AT + len(new_sections) * SECTION.size
    body = bytearray(b"\0" * ((table_end + 7) // 8 * 8 - SECTIONS_AT))
    placed = []
    for kind, name, payload in new_sections:
        offset = SECTIONS_AT + len(body)
        placed.append((kind, name, offset, len(payload)))
        body += payload
        body += b"\0" * (-len(body) % 8)
    for i, entry in enumerate(placed):
        SECTION.pack_into(body, i * SECTION.size, *entry)
    struct.pack_into("<I", head, COUNT_AT, len(new_sections))
    out = head + body
    struct.pack_into("<Q", out, LENGTH_AT, len(out))
    return bytes(out)


def kernel_xml(data: bytes) -> bytes:
    return next(payload for kind, _, payload in sections(data) if kind == EMBEDDED_METADATA)


def with_kernel_xml(data: bytes, xml: bytes) -> bytes:
    """`data` with its EMBEDDED_METADATA section replaced by `xml` (any length)."""
    return build(data, [(k, n, xml if k == EMBEDDED_METADATA else p) for k, n, p in sections(data)])


def with_section(data: bytes, kind: int, payload: bytes, name: bytes = b"extra") -> bytes:
    return build(data, sections(data) + [(kind, name.ljust(16, b"\0")[:16], payload)])
