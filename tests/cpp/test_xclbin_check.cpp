// The xclbin reader (backends/fpga/xclbin_check.h, kernel_xml.h) on its own, under the sanitizers
// in `make test-asan`: named refusals for hostile kernel XML, and a seeded mutation run in which every
// file is either refused with std::invalid_argument or accepted — and then parsed by XRT's own
// xrt::xclbin without a crash, the property the re-emitted XML exists for.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <xclbin.h>
#include <xrt/experimental/xrt_xclbin.h>

#include "backends/fpga/kernel_xml.h"
#include "backends/fpga/xclbin_check.h"
#include "backends/fpga/xclbin_writer.h"
#include "expect.h"

namespace {

using edgemoe_test::expect;
namespace fs = std::filesystem;

fs::path g_work;

std::string write_file(const std::vector<char>& bytes, const std::string& name) {
  const std::string path = (g_work / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

// Returns "" if accepted, else the message.
std::string refusal(const std::vector<char>& bytes, std::vector<char>* handed = nullptr) {
  try {
    std::vector<char> out = edgemoe::fpga::read_checked_xclbin(write_file(bytes, "case.xclbin"));
    if (handed) *handed = std::move(out);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

struct Layout {
  uint64_t xml_offset = 0, xml_size = 0;
};

Layout locate_xml(const std::vector<char>& bytes) {
  axlf top;
  std::memcpy(&top, bytes.data(), sizeof top);
  for (uint32_t i = 0; i < top.m_header.m_numSections; ++i) {
    axlf_section_header h;
    std::memcpy(&h, bytes.data() + offsetof(axlf, m_sections) + i * sizeof h, sizeof h);
    if (h.m_sectionKind == EMBEDDED_METADATA) return {h.m_sectionOffset, h.m_sectionSize};
  }
  return {};
}

// The writer's xclbin with its kernel XML replaced (the XML is the last section it writes).
std::vector<char> with_xml(const std::vector<char>& good, const std::string& xml) {
  const Layout at = locate_xml(good);
  std::vector<char> out(good.begin(), good.begin() + long(at.xml_offset));
  out.insert(out.end(), xml.begin(), xml.end());
  out.resize((out.size() + 7) / 8 * 8, 0);
  axlf top;
  std::memcpy(&top, out.data(), sizeof top);
  top.m_header.m_length = out.size();
  std::memcpy(out.data(), &top, offsetof(axlf, m_sections));
  for (uint32_t i = 0; i < top.m_header.m_numSections; ++i) {
    axlf_section_header h;
    const size_t where = offsetof(axlf, m_sections) + i * sizeof h;
    std::memcpy(&h, out.data() + where, sizeof h);
    if (h.m_sectionKind == EMBEDDED_METADATA) h.m_sectionSize = xml.size();
    std::memcpy(out.data() + where, &h, sizeof h);
  }
  return out;
}

void named_refusals(const std::vector<char>& good, const std::string& xml) {
  const std::string kernel = "<kernel name=\"m3vit_backbone\"";
  const size_t at = xml.find(kernel);
  auto inserted = [&](const std::string& markup) { return with_xml(good, xml.substr(0, at) + markup + xml.substr(at)); };
  const std::string hostile = "((a*)*)*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
  std::string deep;
  for (int i = 0; i < 50000; ++i) deep += "<n>";
  for (int i = 0; i < 50000; ++i) deep += "</n>";
  struct Case {
    const char* name;
    std::vector<char> bytes;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"gt in a value", inserted("<kernel vlnv=\"a>\" name=\"" + hostile + "\"/>"), "not an identifier"},
      {"tab before name", inserted("<kernel\tname=\"" + hostile + "\"/>"), "not an identifier"},
      {"name in single quotes", inserted("<kernel v='name=\"m3vit_backbone\"' name=\"" + hostile + "\"/>"),
       "not an identifier"},
      {"tags in a comment", inserted("<!-- </core></device> --><kernel name=\"" + hostile + "\"/>"),
       "not an identifier"},
      {"deep", inserted(deep), "nests deeper than 32"},
      {"doctype", with_xml(good, "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY a \"aaaa\">]><project/>"),
       "has a DOCTYPE"},
      {"not utf-8", inserted("<e a=\"\xff\"/>"), "not well-formed XML"},
      {"empty", with_xml(good, ""), "EMBEDDED_METADATA is empty"},
      {"only a declaration", with_xml(good, "<?xml version=\"1.0\"?>"), "not well-formed XML"},
      {"too large", with_xml(good, "<project>" + std::string(edgemoe::fpga::kMaxKernelXmlBytes, ' ') + "</project>"),
       "more than the 1024 KiB"},
  };
  for (const Case& c : cases) {
    const std::string why = refusal(c.bytes);
    expect(why.find(c.needle) != std::string::npos, std::string(c.name) + ": refused with '" + c.needle + "', got '" +
                                                        why.substr(0, 300) + "'");
  }
}

// XRT parses what edgemoe hands it, every part the host flow reads.
void parse_with_xrt(const std::vector<char>& handed, const std::string& what) {
  try {
    const xrt::xclbin xclbin(handed);
    for (const xrt::xclbin::kernel& k : xclbin.get_kernels()) {
      (void)k.get_name();
      for (const xrt::xclbin::arg& a : k.get_args()) (void)a.get_offset();
      (void)k.get_cus();
    }
  } catch (const std::exception& e) {
    (void)e;  // an XRT exception is a refusal the device layer names; only a crash is a failure here
  }
  (void)what;
}

// Seeded mutations of the container and of the XML. The run must end: no crash, no hang, no
// sanitizer report; the counts show both outcomes are reached.
void mutations(const std::vector<char>& good, const std::string& xml, int cases) {
  std::mt19937 rng(20);
  auto pick = [&](size_t n) { return size_t(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  const std::vector<std::string> snippets = {
      "<", ">", "/>", "\"", "'", "&", "&amp;", "&#0;", "&#x110000;", "<!--", "-->", "<![CDATA[", "]]>", "\t", "\n",
      "<kernel name=\"k\"/>", "<arg name=\"a\" id=\"0\"/>", "<!DOCTYPE x>", "<?pi?>", "\xff", "\xc3\xa9", "\x01",
      " name=\"(a|a)*b\"", "<core/>", "</kernel>", "<port mode=\"slave\" range=\"x\"/>", "0x", "-1",
      "99999999999999999999"};
  const std::vector<std::string> values = {
      "", "0", "0x0", "0x1C", "010", "0x10000000000000000", "18446744073709551615", "-1", " 1", "abc", "m3vit_backbone",
      "a&lt;b", "&quot;", "&apos;&gt;", "\xc3\xa9", "&#233;", "&#x1F600;", "x y", "slave", "master", "inout"};
  int accepted = 0, refused = 0;
  for (int i = 0; i < cases; ++i) {
    std::vector<char> bytes;
    const int family = i % 5;
    if (family == 0) {  // flip bytes anywhere
      bytes = good;
      for (size_t n = 1 + pick(8); n > 0; --n) bytes[pick(bytes.size())] ^= char(1 + pick(255));
    } else if (family == 1) {  // cut or extend
      bytes = good;
      bytes.resize(pick(good.size() + 64));
    } else if (family == 2) {  // a section-table field set to an edge value
      bytes = good;
      axlf top;
      std::memcpy(&top, bytes.data(), sizeof top);
      const size_t at = offsetof(axlf, m_sections) + pick(top.m_header.m_numSections) * sizeof(axlf_section_header);
      const uint64_t edges[] = {0, 1, 7, 8, 0x7fffffff, 0xffffffff, ~0ull, ~0ull - 7, uint64_t(bytes.size())};
      const uint64_t value = edges[pick(std::size(edges))];
      const size_t fields[] = {offsetof(axlf_section_header, m_sectionKind),
                               offsetof(axlf_section_header, m_sectionOffset),
                               offsetof(axlf_section_header, m_sectionSize)};
      const size_t field = fields[pick(3)];
      std::memcpy(bytes.data() + at + field, &value, field == 0 ? 4 : 8);
    } else if (family == 3) {  // well-formed edits: a value, the layout, a comment, a repeated element
      std::string x = xml;
      for (size_t n = 1 + pick(3); n > 0; --n) {
        const size_t quote = x.find("=\"", pick(x.size()));
        if (quote == std::string::npos) continue;
        switch (pick(4)) {
          case 0: {
            const size_t end = x.find('"', quote + 2);
            x.replace(quote + 2, end - quote - 2, values[pick(values.size())]);
            break;
          }
          case 1: {
            const size_t space = x.rfind(' ', quote);
            if (space != std::string::npos) x[space] = pick(2) ? '\t' : '\n';
            break;
          }
          case 2: {
            const size_t close = x.find('>', quote);
            if (close != std::string::npos) x.insert(close + 1, "<!-- </kernel> -->");
            break;
          }
          default: {
            const size_t open = x.rfind('<', quote), close = x.find("/>", quote);
            if (open != std::string::npos && close != std::string::npos && close - open < 400)
              x.insert(open, x.substr(open, close + 2 - open));
          }
        }
      }
      bytes = with_xml(good, x);
    } else {  // markup spliced into, cut from or repeated within the XML
      std::string x = xml;
      for (size_t n = 1 + pick(3); n > 0; --n) {
        const size_t p = pick(x.size() + 1);
        switch (pick(3)) {
          case 0: x.insert(p, snippets[pick(snippets.size())]); break;
          case 1: x.erase(p, pick(40)); break;
          default: x.insert(p, x.substr(p, pick(200))); break;
        }
      }
      bytes = with_xml(good, x);
    }
    std::vector<char> handed;
    const std::string why = refusal(bytes, &handed);
    if (why.empty()) {
      ++accepted;
      parse_with_xrt(handed, "case " + std::to_string(i));
      // What is handed on is canonical: checking it again gives it back unchanged.
      std::vector<char> again;
      expect(refusal(handed, &again).empty() && again == handed, "case " + std::to_string(i) + ": not a fixed point");
    } else {
      ++refused;
      expect(why.rfind("xclbin '", 0) == 0, "case " + std::to_string(i) + ": message names the file: " + why);
    }
  }
  std::printf("mutations: %d accepted, %d refused\n", accepted, refused);
  expect(accepted > cases / 10 && refused > cases / 10, "mutations reach both outcomes");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s WORKDIR\n", argv[0]);
    return 2;
  }
  g_work = argv[1];
  fs::create_directories(g_work);
  try {
    const std::vector<char> good = edgemoe::fpga::metadata_xclbin({});
    const Layout at = locate_xml(good);
    const std::string xml(good.data() + at.xml_offset, at.xml_size);
    std::vector<char> handed;
    expect(refusal(good, &handed).empty(), "the writer's own xclbin is accepted");
    parse_with_xrt(handed, "good");
    named_refusals(good, xml);
    mutations(good, xml, 2000);
  } catch (const std::exception& e) {
    expect(false, std::string("unexpected exception: ") + e.what());
  }
  return edgemoe_test::report();
}
