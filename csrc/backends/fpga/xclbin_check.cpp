#include "backends/fpga/xclbin_check.h"

#include <xclbin.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace edgemoe::fpga {

namespace {

constexpr uint64_t kMaxFileBytes = 4ull << 30;  // real xclbins with a bitstream are ~10-200 MB
constexpr uint32_t kMaxSections = 4096;
constexpr int32_t kMaxEntries = 1 << 16;

struct Section {
  const char* data = nullptr;
  uint64_t size = 0;
};

template <size_t N>
bool terminated(const char (&text)[N]) {
  return std::memchr(text, 0, N) != nullptr;
}
template <size_t N>
bool terminated(const unsigned char (&text)[N]) {
  return std::memchr(text, 0, N) != nullptr;
}

}  // namespace

void check_xclbin_file(const std::string& path) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("xclbin '" + path + "': " + what); };
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("cannot open it for reading");
  const std::streamoff end = in.tellg();
  if (end < 0) fail("cannot read it");
  const uint64_t size = uint64_t(end);
  if (size < sizeof(axlf)) fail("not an xclbin (" + std::to_string(size) + " bytes, shorter than its header)");
  if (size > kMaxFileBytes) fail("larger than 4 GiB");
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

  Section mem, ip, conn, group_mem, group_conn, metadata;
  for (uint32_t i = 0; i < count; ++i) {
    axlf_section_header h;
    std::memcpy(&h, bytes.data() + offsetof(axlf, m_sections) + i * sizeof h, sizeof h);
    if (h.m_sectionOffset > size || h.m_sectionSize > size - h.m_sectionOffset)
      fail("section " + std::to_string(i) + " lies outside the file");
    const Section s{bytes.data() + h.m_sectionOffset, h.m_sectionSize};
    switch (h.m_sectionKind) {
      case MEM_TOPOLOGY: mem = s; break;
      case IP_LAYOUT: ip = s; break;
      case CONNECTIVITY: conn = s; break;
      case ASK_GROUP_TOPOLOGY: group_mem = s; break;
      case ASK_GROUP_CONNECTIVITY: group_conn = s; break;
      case EMBEDDED_METADATA: metadata = s; break;
      default: break;
    }
  }
  if (!mem.data) fail("no MEM_TOPOLOGY section (memory banks)");
  if (!ip.data) fail("no IP_LAYOUT section (compute units)");
  if (!conn.data) fail("no CONNECTIVITY section (argument-to-bank map)");
  if (!metadata.data || metadata.size == 0) fail("no EMBEDDED_METADATA section (kernel arguments)");

  // Each table: a 32-bit count, padding to its entry array, entries that fit the section.
  auto entries = [&](const Section& s, size_t array_offset, size_t entry_size, const char* what) {
    if (!s.data) return int32_t(0);
    int32_t n;
    if (s.size < sizeof n) fail(std::string(what) + " section is truncated");
    std::memcpy(&n, s.data, sizeof n);
    if (n < 0 || n > kMaxEntries || array_offset + uint64_t(n) * entry_size > s.size)
      fail(std::string(what) + " section claims " + std::to_string(n) + " entries it does not hold");
    return n;
  };
  auto banks_in = [&](const Section& s, const char* what) {
    const int32_t n = entries(s, offsetof(mem_topology, m_mem_data), sizeof(mem_data), what);
    for (int32_t i = 0; i < n; ++i) {
      mem_data m;
      std::memcpy(&m, s.data + offsetof(mem_topology, m_mem_data) + i * sizeof m, sizeof m);
      if (!terminated(m.m_tag)) fail(std::string(what) + " bank " + std::to_string(i) + " has an unterminated tag");
    }
    return n;
  };
  const int32_t banks = banks_in(mem, "MEM_TOPOLOGY");
  const int32_t group_banks = group_mem.data ? banks_in(group_mem, "ASK_GROUP_TOPOLOGY") : banks;
  const int32_t ips = entries(ip, offsetof(ip_layout, m_ip_data), sizeof(ip_data), "IP_LAYOUT");
  for (int32_t i = 0; i < ips; ++i) {
    ip_data d;
    std::memcpy(&d, ip.data + offsetof(ip_layout, m_ip_data) + i * sizeof d, sizeof d);
    if (!terminated(d.m_name)) fail("IP_LAYOUT entry " + std::to_string(i) + " has an unterminated name");
  }
  auto check_links = [&](const Section& s, int32_t bank_count, const char* what) {
    const int32_t n = entries(s, offsetof(connectivity, m_connection), sizeof(connection), what);
    for (int32_t i = 0; i < n; ++i) {
      connection c;
      std::memcpy(&c, s.data + offsetof(connectivity, m_connection) + i * sizeof c, sizeof c);
      if (c.arg_index < 0 || c.arg_index >= kMaxEntries || c.m_ip_layout_index < 0 || c.m_ip_layout_index >= ips ||
          c.mem_data_index < 0 || c.mem_data_index >= bank_count)
        fail(std::string(what) + " entry " + std::to_string(i) + " points outside the compute units or banks");
    }
  };
  check_links(conn, banks, "CONNECTIVITY");
  if (group_conn.data) check_links(group_conn, group_banks, "ASK_GROUP_CONNECTIVITY");
}

}  // namespace edgemoe::fpga
