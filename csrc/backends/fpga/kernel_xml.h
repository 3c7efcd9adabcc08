// The kernel XML of an xclbin (its EMBEDDED_METADATA section), as XRT must see it.
//
// XRT 2.13 parses that XML with a recursive parser (boost's property tree over rapidxml) and turns
// kernel names into std::regex patterns; deep nesting, long names or markup the two parsers read
// differently crash it. So edgemoe parses the XML itself with expat (a real, non-recursive XML
// parser) under fixed limits, checks every value XRT converts, and hands XRT XML it re-emits from
// the parsed tree: canonical markup (no DOCTYPE, comments or processing instructions, escaped
// attribute values), which every conforming parser reads as expat read it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgemoe::fpga {

// A real Vitis kernel XML is a few kilobytes, at most 8 elements deep; these leave ample room.
inline constexpr size_t kMaxKernelXmlBytes = size_t(1) << 20;
inline constexpr int kMaxKernelXmlDepth = 32;
inline constexpr size_t kMaxKernelXmlElements = 16384;
inline constexpr size_t kMaxXmlAttributesPerElement = 64;
inline constexpr size_t kMaxXmlNameBytes = 128;
inline constexpr size_t kMaxXmlValueBytes = 4096;
inline constexpr size_t kMaxXmlTextBytes = 65536;  // character data of one element
inline constexpr size_t kMaxXrtIdentifierBytes = 64;  // kernel and instance names (XRT regexes them)

// Parses and checks `xml`; returns the XML to hand XRT. Throws std::invalid_argument whose message
// starts with "EMBEDDED_METADATA" and names the element and attribute at fault.
std::string canonical_kernel_xml(std::string_view xml);

}  // namespace edgemoe::fpga
