#include "backends/fpga/xclbin_writer.h"

#include <xclbin.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "src/kernel_interface.h"

namespace edgemoe::fpga {

namespace {

constexpr uint64_t kControlBase = 0x1800000;  // the CU's s_axilite base address
#if defined(__aarch64__)
constexpr const char* kHostArchitecture = "aarch64";  // the ZCU102's Cortex-A53
#else
constexpr const char* kHostArchitecture = "x86_64";
#endif

template <typename T>
void append(std::vector<char>* out, const T& value) {
  const char* p = reinterpret_cast<const char*>(&value);
  out->insert(out->end(), p, p + sizeof(T));
}

void pad8(std::vector<char>* out) { out->resize((out->size() + 7) / 8 * 8, 0); }

template <size_t N>
void copy_name(unsigned char (&dst)[N], const std::string& src) {
  if (src.size() >= N) throw std::invalid_argument("xclbin name too long: " + src);
  std::memcpy(dst, src.c_str(), src.size() + 1);
}

template <size_t N>
void copy_name(char (&dst)[N], const std::string& src) {
  copy_name(reinterpret_cast<unsigned char(&)[N]>(dst), src);
}

std::string hex(uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llX", static_cast<unsigned long long>(v));
  return text;
}

std::vector<XclbinArg> kernel_args(const XclbinDescription& d) {
  if (!d.args.empty()) return d.args;
  std::vector<XclbinArg> args;
  for (const edgemoe_hls::KernelArgSpec& a : edgemoe_hls::kKernelInterface) args.push_back({a.name, a.is_buffer});
  return args;
}

std::vector<char> mem_topology_section(const XclbinDescription& d) {
  std::vector<char> out;
  append(&out, int32_t(d.banks.size()));
  out.resize(offsetof(mem_topology, m_mem_data), 0);
  for (const XclbinMemoryBank& bank : d.banks) {
    mem_data m{};
    m.m_type = MEM_DDR4;
    m.m_used = 1;
    m.m_size = bank.size_kb;
    m.m_base_address = bank.base;
    copy_name(m.m_tag, bank.tag);
    append(&out, m);
  }
  return out;
}

std::vector<char> ip_layout_section(const XclbinDescription& d) {
  std::vector<char> out;
  append(&out, int32_t(1));
  out.resize(offsetof(ip_layout, m_ip_data), 0);
  ip_data ip{};
  ip.m_type = IP_KERNEL;
  ip.properties = IP_INT_ENABLE_MASK | (AP_CTRL_CHAIN << IP_CONTROL_SHIFT);
  ip.m_base_address = kControlBase;
  copy_name(ip.m_name, d.kernel + ":" + d.instance);
  append(&out, ip);
  return out;
}

std::vector<char> connectivity_section(const XclbinDescription& d) {
  std::vector<char> out;
  std::vector<connection> links;
  int buffer = 0;
  const std::vector<XclbinArg> list = kernel_args(d);
  for (int i = 0; i < int(list.size()); ++i) {
    if (!list[i].is_buffer) continue;
    if (!d.buffer_banks.empty() && size_t(buffer) >= d.buffer_banks.size())
      throw std::invalid_argument("one bank per buffer argument");
    const int bank = d.buffer_banks.empty() ? 0 : d.buffer_banks[size_t(buffer)];
    if (bank < 0 || size_t(bank) >= d.banks.size()) throw std::invalid_argument("buffer bank out of range");
    links.push_back({i, 0, bank});
    ++buffer;
  }
  if (!d.buffer_banks.empty() && size_t(buffer) != d.buffer_banks.size())
    throw std::invalid_argument("one bank per buffer argument");
  append(&out, int32_t(links.size()));
  for (const connection& c : links) append(&out, c);
  return out;
}

std::string kernel_xml(const XclbinDescription& d) {
  std::string args;
  int offset = edgemoe_hls::kFirstArgOffset;
  const std::vector<XclbinArg> list = kernel_args(d);
  for (size_t i = 0; i < list.size(); ++i) {
    const XclbinArg& a = list[i];
    args += std::string("          <arg name=\"") + a.name + "\" addressQualifier=\"" + (a.is_buffer ? "1" : "0") +
            "\" id=\"" + std::to_string(i) + "\" port=\"" + (a.is_buffer ? "M_AXI_GMEM" : "S_AXI_CONTROL") +
            "\" size=\"" + (a.is_buffer ? "0x8" : "0x4") + "\" offset=\"" + hex(uint64_t(offset)) +
            "\" hostOffset=\"0x0\" hostSize=\"" + (a.is_buffer ? "0x8" : "0x4") + "\" type=\"" +
            (a.is_buffer ? "void*" : "unsigned int") + "\"/>\n";
    offset += a.is_buffer ? edgemoe_hls::kPointerStride : edgemoe_hls::kScalarStride;
  }
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<project name=\"edgemoe\">\n"
         "  <platform vendor=\"xilinx\" boardid=\"noop\" name=\"noop\" featureRomTime=\"0\">\n"
         "    <version major=\"1\" minor=\"0\"/>\n"
         "    <description/>\n"
         "    <board name=\"\" vendor=\"\" fpga=\"\"><interfaces/><images/><id><vendor/><device/><subsystem/></id></board>\n"
         "    <build_flow/>\n"
         "    <host architecture=\"" + std::string(kHostArchitecture) + "\"/>\n"
         "    <device name=\"fpga0\" fpgaDevice=\"virtexuplus:xcu280:fsvh2892:-2L:e\" addrWidth=\"0\">\n"
         "      <core name=\"OCL_REGION_0\" target=\"hw\" type=\"clc_region\" clockFreq=\"0MHz\" numComputeUnits=\"60\">\n"
         "        <kernelClocks><clock port=\"KERNEL_CLK\" frequency=\"300.000000MHz\"/></kernelClocks>\n"
         "        <kernel name=\"" + d.kernel + "\" language=\"c\" vlnv=\"xilinx.com:hls:" + d.kernel +
         ":1.0\" preferredWorkGroupSizeMultiple=\"0\" workGroupSize=\"1\" debug=\"false\" interrupt=\"true\" "
         "hwControlProtocol=\"ap_ctrl_chain\">\n"
         "          <port name=\"M_AXI_GMEM\" mode=\"master\" range=\"0xFFFFFFFF\" dataWidth=\"512\" portType=\"addressable\" base=\"0x0\"/>\n"
         "          <port name=\"S_AXI_CONTROL\" mode=\"slave\" range=\"0x1000\" dataWidth=\"32\" portType=\"addressable\" base=\"0x0\"/>\n" +
         args +
         "          <compileWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n"
         "          <maxWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n"
         "          <string_table/>\n"
         "          <instance name=\"" + d.instance + "\"><addrRemap base=\"" + hex(kControlBase) +
         "\" range=\"0x10000\" port=\"S_AXI_CONTROL\"/></instance>\n"
         "        </kernel>\n"
         "      </core>\n"
         "    </device>\n"
         "  </platform>\n"
         "</project>\n";
}

}  // namespace

std::vector<char> metadata_xclbin(const XclbinDescription& d) {
  if (d.banks.empty()) throw std::invalid_argument("an xclbin needs at least one memory bank");
  const std::string xml = kernel_xml(d);
  const std::vector<std::pair<axlf_section_kind, std::vector<char>>> sections = {
      {MEM_TOPOLOGY, mem_topology_section(d)},
      {IP_LAYOUT, ip_layout_section(d)},
      {CONNECTIVITY, connectivity_section(d)},
      {EMBEDDED_METADATA, std::vector<char>(xml.begin(), xml.end())},
  };
  const char* names[] = {"mem_topology", "ip_layout", "connectivity", "metadata"};

  std::vector<char> out(sizeof(axlf) + (sections.size() - 1) * sizeof(axlf_section_header), 0);
  pad8(&out);
  std::vector<axlf_section_header> headers;
  for (size_t i = 0; i < sections.size(); ++i) {
    axlf_section_header h{};
    h.m_sectionKind = sections[i].first;
    copy_name(h.m_sectionName, names[i]);
    h.m_sectionOffset = out.size();
    h.m_sectionSize = sections[i].second.size();
    headers.push_back(h);
    out.insert(out.end(), sections[i].second.begin(), sections[i].second.end());
    pad8(&out);
  }
  axlf top{};
  std::memcpy(top.m_magic, "xclbin2", 8);
  top.m_signature_length = -1;
  std::memset(top.reserved, 0xFF, sizeof top.reserved);
  std::memset(top.m_keyBlock, 0xFF, sizeof top.m_keyBlock);
  top.m_uniqueId = 0x6564676d6f65ull;  // fixed: the file is a pure function of the interface
  top.m_header.m_length = out.size();
  top.m_header.m_versionMajor = 2;
  top.m_header.m_versionMinor = 13;
  top.m_header.m_versionPatch = 466;
  top.m_header.m_mode = XCLBIN_FLAT;
  copy_name(top.m_header.m_platformVBNV, "xilinx:noop:edgemoe:1.0");
  // A fixed version-4 UUID (byte 6 high nibble 4, byte 8 top bits 10): reproducible files.
  const unsigned char uuid[16] = {0xed, 0x6e, 0x30, 0xe0, 0x5f, 0x0b, 0x4a, 0x01,
                                  0x9c, 0x3a, 0x6d, 0x33, 0x76, 0x69, 0x74, 0x00};
  std::memcpy(&top.m_header.uuid, uuid, sizeof uuid);
  top.m_header.m_numSections = uint32_t(sections.size());
  std::memcpy(out.data(), &top, offsetof(axlf, m_sections));
  std::memcpy(out.data() + offsetof(axlf, m_sections), headers.data(), headers.size() * sizeof(axlf_section_header));
  return out;
}

}  // namespace edgemoe::fpga
