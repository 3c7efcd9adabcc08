#include "backends/fpga/xclbin_check.h"

#include <xclbin.h>

#include <cstddef>
#include <cctype>
#include <cstring>
#include <functional>
#include <string_view>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace edgemoe::fpga {

namespace {

constexpr uint64_t kMaxFileBytes = 2ull << 30;  // real xclbins with a bitstream are ~10-200 MB
constexpr uint32_t kMaxSections = 4096;
constexpr int32_t kMaxEntries = 1 << 16;
constexpr int32_t kMaxComputeUnits = 128;         // XRT keeps CU bookkeeping in fixed arrays of 128
constexpr uint64_t kMaxMetadataBytes = 16u << 20;  // the kernel XML; real ones are a few KB
constexpr int kMaxXmlDepth = 64;                   // XRT's XML parser recurses per nesting level

struct Section {
  const char* data = nullptr;
  uint64_t size = 0;
};

template <class Char, size_t N>
bool terminated(const Char (&text)[N]) {
  return std::memchr(text, 0, N) != nullptr;
}

using Fail = std::function<void(const std::string&)>;

// A table XRT walks by its own count (a Count at the section's start, entries from array_offset):
// the number of entries, once the section is shown to hold them all.
template <class Count>
int64_t table_entries(const Section& s, size_t array_offset, size_t entry_size, const char* what, const Fail& fail) {
  if (!s.data) return 0;
  Count n;
  if (s.size < sizeof n) fail(std::string(what) + " section is truncated");
  std::memcpy(&n, s.data, sizeof n);
  const int64_t count = int64_t(n);
  if (count < 0 || count > kMaxEntries || array_offset + uint64_t(count) * entry_size > s.size)
    fail(std::string(what) + " section claims " + std::to_string(count) + " entries it does not hold");
  return count;
}

// The kernel XML, before XRT's recursive parser and its name regexes see it: bounded nesting, and
// kernel and instance names that are plain identifiers.
void check_metadata_xml(const char* xml, uint64_t size, const Fail& fail) {
  if (size > kMaxMetadataBytes) fail("EMBEDDED_METADATA is larger than 16 MiB");
  int depth = 0;
  for (uint64_t i = 0; i < size; ++i) {
    if (xml[i] != '<') continue;
    const uint64_t close = std::string_view(xml, size).find('>', i);
    if (close == std::string_view::npos) fail("EMBEDDED_METADATA has an unterminated tag");
    const std::string_view tag(xml + i + 1, close - i - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') {
      i = close;
      continue;
    }
    if (tag[0] == '/') {
      --depth;
    } else if (tag.back() != '/') {
      if (++depth > kMaxXmlDepth) fail("EMBEDDED_METADATA nests deeper than 64 elements");
    }
    for (const char* element : {"kernel ", "instance "}) {
      if (tag.substr(0, std::strlen(element)) != element) continue;
      const size_t at = tag.find(" name=\"");
      const size_t end = at == std::string_view::npos ? at : tag.find('"', at + 7);
      if (end == std::string_view::npos) fail(std::string("EMBEDDED_METADATA has a <") + element + "> without a name");
      const std::string_view name = tag.substr(at + 7, end - at - 7);
      bool plain = !name.empty() && name.size() <= 64;
      for (char c : name) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!plain) fail(std::string("EMBEDDED_METADATA names a ") + element + "'" + std::string(name.substr(0, 64)) +
                       "', which is not an identifier of at most 64 letters, digits and underscores");
    }
    i = close;
  }
}

}  // namespace

std::vector<char> read_checked_xclbin(const std::string& path) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("xclbin '" + path + "': " + what); };
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("cannot open it for reading");
  const std::streamoff end = in.tellg();
  if (end < 0) fail("cannot read it");
  const uint64_t size = uint64_t(end);
  if (size < sizeof(axlf)) fail("not an xclbin (" + std::to_string(size) + " bytes, shorter than its header)");
  if (size > kMaxFileBytes) fail("larger than 2 GiB");
  std::vector<char> bytes(size);
  in.seekg(0);
  if (!in.read(bytes.data(), std::streamsize(size))) fail("cannot read it");

  axlf top;
  std::memcpy(&top, bytes.data(), sizeof top);
  if (std::memcmp(top.m_magic, "xclbin2", 8) != 0) fail("not an xclbin (no 'xclbin2' magic)");
  if (top.m_header.m_length != size)
    fail("truncated or padded: the header says " + std::to_string(top.m_header.m_length) + " bytes, the file has " +
         std::to_string(size));
  const uint32_t count = top.m_header.m_numSections;
  if (count == 0 || count > kMaxSections) fail("implausible section count " + std::to_string(count));
  const uint64_t headers_end = offsetof(axlf, m_sections) + uint64_t(count) * sizeof(axlf_section_header);
  if (headers_end > size) fail("section table runs past the end of the file");

  Section mem, ip, conn, group_mem, group_conn, metadata, clocks, debug_ip;
  for (uint32_t i = 0; i < count; ++i) {
    axlf_section_header h;
    std::memcpy(&h, bytes.data() + offsetof(axlf, m_sections) + i * sizeof h, sizeof h);
    if (h.m_sectionOffset > size || h.m_sectionSize > size - h.m_sectionOffset)
      fail("section " + std::to_string(i) + " lies outside the file");
    const Section s{bytes.data() + h.m_sectionOffset, h.m_sectionSize};
    Section* slot = nullptr;
    switch (h.m_sectionKind) {
      case MEM_TOPOLOGY: slot = &mem; break;
      case IP_LAYOUT: slot = &ip; break;
      case CONNECTIVITY: slot = &conn; break;
      case ASK_GROUP_TOPOLOGY: slot = &group_mem; break;
      case ASK_GROUP_CONNECTIVITY: slot = &group_conn; break;
      case EMBEDDED_METADATA: slot = &metadata; break;
      case CLOCK_FREQ_TOPOLOGY: slot = &clocks; break;
      case DEBUG_IP_LAYOUT: slot = &debug_ip; break;
      default: break;
    }
    // XRT reads the first section of a kind; one copy of each, so the checked copy is the one read.
    if (slot && slot->data) fail("section kind " + std::to_string(h.m_sectionKind) + " appears twice");
    if (slot) *slot = s;
  }
  if (!mem.data) fail("no MEM_TOPOLOGY section (memory banks)");
  if (!ip.data) fail("no IP_LAYOUT section (compute units)");
  if (!conn.data) fail("no CONNECTIVITY section (argument-to-bank map)");
  if (!metadata.data || metadata.size == 0) fail("no EMBEDDED_METADATA section (kernel arguments)");

  auto banks_in = [&](const Section& s, const char* what) {
    const int64_t n = table_entries<int32_t>(s, offsetof(mem_topology, m_mem_data), sizeof(mem_data), what, fail);
    for (int64_t i = 0; i < n; ++i) {
      mem_data m;
      std::memcpy(&m, s.data + offsetof(mem_topology, m_mem_data) + i * sizeof m, sizeof m);
      if (!terminated(m.m_tag)) fail(std::string(what) + " bank " + std::to_string(i) + " has an unterminated tag");
    }
    return n;
  };
  const int64_t banks = banks_in(mem, "MEM_TOPOLOGY");
  const int64_t group_banks = group_mem.data ? banks_in(group_mem, "ASK_GROUP_TOPOLOGY") : banks;
  const int64_t ips = table_entries<int32_t>(ip, offsetof(ip_layout, m_ip_data), sizeof(ip_data), "IP_LAYOUT", fail);
  if (ips > kMaxComputeUnits) fail("IP_LAYOUT lists " + std::to_string(ips) + " IPs, more than XRT's 128");
  for (int64_t i = 0; i < ips; ++i) {
    ip_data d;
    std::memcpy(&d, ip.data + offsetof(ip_layout, m_ip_data) + i * sizeof d, sizeof d);
    if (!terminated(d.m_name)) fail("IP_LAYOUT entry " + std::to_string(i) + " has an unterminated name");
  }
  auto check_links = [&](const Section& s, int64_t bank_count, const char* what) {
    const int64_t n = table_entries<int32_t>(s, offsetof(connectivity, m_connection), sizeof(connection), what, fail);
    for (int64_t i = 0; i < n; ++i) {
      connection c;
      std::memcpy(&c, s.data + offsetof(connectivity, m_connection) + i * sizeof c, sizeof c);
      if (c.arg_index < 0 || c.arg_index >= kMaxEntries || c.m_ip_layout_index < 0 || c.m_ip_layout_index >= ips ||
          c.mem_data_index < 0 || c.mem_data_index >= bank_count)
        fail(std::string(what) + " entry " + std::to_string(i) + " points outside the compute units or banks");
    }
  };
  check_links(conn, banks, "CONNECTIVITY");
  if (group_conn.data) check_links(group_conn, group_banks, "ASK_GROUP_CONNECTIVITY");
  // Two more tables XRT walks by their own 16-bit counts.
  table_entries<int16_t>(clocks, offsetof(clock_freq_topology, m_clock_freq), sizeof(clock_freq),
                         "CLOCK_FREQ_TOPOLOGY", fail);
  table_entries<uint16_t>(debug_ip, offsetof(debug_ip_layout, m_debug_ip_data), sizeof(debug_ip_data),
                          "DEBUG_IP_LAYOUT", fail);
  check_metadata_xml(metadata.data, metadata.size, fail);
  return bytes;
}

}  // namespace edgemoe::fpga
