#include "backends/fpga/xclbin_check.h"

#include <xclbin.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include "backends/fpga/kernel_xml.h"
#include "src/kernel_interface.h"

namespace edgemoe::fpga {

namespace {

constexpr uint32_t kMaxSections = 4096;
constexpr int32_t kMaxEntries = 1 << 16;
constexpr int32_t kMaxComputeUnits = 128;         // XRT keeps CU bookkeeping in fixed arrays of 128

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

// The file, opened once: every byte XRT will see is read from this descriptor.
class XclbinFile {
 public:
  XclbinFile(const std::string& path, const Fail& fail) : fail_(fail) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd_ < 0) fail(std::string("cannot open it for reading (") + std::strerror(errno) + ")");
    struct stat st;
    const bool stated = ::fstat(fd_, &st) == 0;
    const int stat_error = errno;
    if (!stated || !S_ISREG(st.st_mode)) {
      ::close(fd_);  // the destructor does not run for a constructor that throws
      fd_ = -1;
      if (!stated) fail(std::string("cannot read it (") + std::strerror(stat_error) + ")");
      fail("is not a regular file (a directory, FIFO, socket or device)");
    }
    size_ = uint64_t(st.st_size);
  }
  ~XclbinFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  XclbinFile(const XclbinFile&) = delete;
  XclbinFile& operator=(const XclbinFile&) = delete;

  uint64_t size() const { return size_; }

  void read(uint64_t offset, uint64_t bytes, char* into) const {
    while (bytes > 0) {
      const ssize_t got = ::pread(fd_, into, size_t(std::min<uint64_t>(bytes, 1u << 30)), off_t(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail_(std::string("cannot read it (") + std::strerror(errno) + ")");
      if (got == 0) fail_("changed while it was read (it is shorter than it was)");
      into += got, offset += uint64_t(got), bytes -= uint64_t(got);
    }
  }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  const Fail& fail_;
};

bool allowed_kind(uint32_t kind) {
  switch (kind) {
    // Sections the runtime parses with code edgemoe's boards never need: AI-engine metadata (JSON)
    // and soft kernels (offsets into their own section). Refused rather than passed on unchecked.
    case AIE_METADATA:
    case AIE_RESOURCES:
    case SOFT_KERNEL:
      return false;
    default:
      return kind <= VENDER_METADATA;
  }
}

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case AIE_METADATA: return "AIE_METADATA";
    case AIE_RESOURCES: return "AIE_RESOURCES";
    case SOFT_KERNEL: return "SOFT_KERNEL";
    default: return "unknown";
  }
}

void pad8(std::vector<char>* out) { out->resize((out->size() + 7) / 8 * 8, 0); }

}  // namespace

std::vector<char> read_checked_xclbin(const std::string& path) {
  const Fail fail = [&](const std::string& what) { throw std::invalid_argument("xclbin '" + path + "': " + what); };
  const XclbinFile file(path, fail);
  const uint64_t size = file.size();
  if (size < sizeof(axlf)) fail("not an xclbin (" + std::to_string(size) + " bytes, shorter than its header)");
  if (size > kMaxXclbinBytes)
    fail("is " + std::to_string(size >> 20) + " MiB, larger than any xclbin for edgemoe's boards (" +
         std::to_string(kMaxXclbinBytes >> 20) + " MiB)");

  axlf top;
  file.read(0, sizeof top, reinterpret_cast<char*>(&top));
  if (std::memcmp(top.m_magic, "xclbin2", 8) != 0) fail("not an xclbin (no 'xclbin2' magic)");
  if (top.m_header.m_length != size)
    fail("truncated or padded: the header says " + std::to_string(top.m_header.m_length) + " bytes, the file has " +
         std::to_string(size));
  if (top.m_signature_length > 0)
    fail("is signed; edgemoe hands XRT a re-emitted copy, which the signature would not cover: use an unsigned "
         "xclbin");
  const uint32_t count = top.m_header.m_numSections;
  if (count == 0 || count > kMaxSections) fail("implausible section count " + std::to_string(count));
  const uint64_t headers_end = offsetof(axlf, m_sections) + uint64_t(count) * sizeof(axlf_section_header);
  if (headers_end > size) fail("section table runs past the end of the file");
  std::vector<axlf_section_header> headers(count);
  file.read(offsetof(axlf, m_sections), uint64_t(count) * sizeof(axlf_section_header),
            reinterpret_cast<char*>(headers.data()));

  // Sections lie inside the file, after the section table, and apart: what is copied is never more
  // than the file (a real xclbin lays them out in order, each once).
  std::vector<uint32_t> order(count);
  for (uint32_t i = 0; i < count; ++i) {
    const axlf_section_header& h = headers[i];
    if (h.m_sectionOffset > size || h.m_sectionSize > size - h.m_sectionOffset)
      fail("section " + std::to_string(i) + " lies outside the file");
    if (h.m_sectionOffset < headers_end && h.m_sectionSize > 0)
      fail("section " + std::to_string(i) + " overlaps the section table");
    if (!allowed_kind(h.m_sectionKind))
      fail("section " + std::to_string(i) + " is of kind " + std::to_string(h.m_sectionKind) + " (" +
           kind_name(h.m_sectionKind) + "), which no build for edgemoe's boards (ZCU102, U280) has");
    order[i] = i;
  }
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return headers[a].m_sectionOffset < headers[b].m_sectionOffset; });
  for (uint32_t k = 1; k < count; ++k) {
    const axlf_section_header &prev = headers[order[k - 1]], &next = headers[order[k]];
    if (prev.m_sectionSize > 0 && next.m_sectionSize > 0 &&
        prev.m_sectionOffset + prev.m_sectionSize > next.m_sectionOffset)
      fail("sections " + std::to_string(order[k - 1]) + " and " + std::to_string(order[k]) + " overlap");
  }

  // The copy for XRT: the header, the table, each section 8-byte aligned in table order, the
  // kernel XML re-emitted.
  std::vector<char> out(offsetof(axlf, m_sections) + uint64_t(count) * sizeof(axlf_section_header), 0);
  pad8(&out);
  bool seen_metadata = false;
  for (uint32_t i = 0; i < count; ++i) {
    axlf_section_header& h = headers[i];
    const uint64_t at = out.size();
    if (h.m_sectionKind == EMBEDDED_METADATA && !seen_metadata) {
      seen_metadata = true;
      if (h.m_sectionSize > kMaxKernelXmlBytes)
        fail("EMBEDDED_METADATA is " + std::to_string(h.m_sectionSize) + " bytes, more than the " +
             std::to_string(kMaxKernelXmlBytes >> 10) + " KiB a kernel XML may have (a real one is a few KB)");
      std::string xml(h.m_sectionSize, '\0');
      file.read(h.m_sectionOffset, h.m_sectionSize, xml.data());
      std::string canonical;
      try {
        canonical = canonical_kernel_xml(xml);
      } catch (const std::invalid_argument& e) {
        fail(e.what());
      }
      out.insert(out.end(), canonical.begin(), canonical.end());
      h.m_sectionSize = canonical.size();
    } else {
      out.resize(at + h.m_sectionSize);
      file.read(h.m_sectionOffset, h.m_sectionSize, out.data() + at);
    }
    h.m_sectionOffset = at;
    pad8(&out);
  }
  top.m_header.m_length = out.size();
  std::memcpy(out.data(), &top, offsetof(axlf, m_sections));
  std::memcpy(out.data() + offsetof(axlf, m_sections), headers.data(), uint64_t(count) * sizeof(axlf_section_header));

  Section mem, ip, conn, group_mem, group_conn, metadata, clocks, debug_ip;
  for (uint32_t i = 0; i < count; ++i) {
    const axlf_section_header& h = headers[i];
    const Section s{out.data() + h.m_sectionOffset, h.m_sectionSize};
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
    // XRT matches compute units to the kernel by name, but opens only kernels with a control port.
    const std::string name(reinterpret_cast<const char*>(d.m_name));
    const std::string prefix = std::string(edgemoe_hls::kKernelName) + ":";
    if (name.compare(0, prefix.size(), prefix) == 0 && (d.m_type != IP_KERNEL || d.m_base_address == ~uint64_t(0)))
      fail("IP_LAYOUT entry " + std::to_string(i) + " ('" + name + "') is a compute unit of " + edgemoe_hls::kKernelName +
           " but not a kernel with an AXI-lite control port (type " + std::to_string(d.m_type) + ", base address " +
           std::to_string(d.m_base_address) + ")");
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
  return out;
}

}  // namespace edgemoe::fpga
