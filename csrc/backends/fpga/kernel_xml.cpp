#include "backends/fpga/kernel_xml.h"

#include <expat.h>

#include <cctype>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace edgemoe::fpga {

namespace {

struct Element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string text;
  std::vector<size_t> children;  // indices into Document::elements
};

struct Document {
  std::vector<Element> elements;  // elements[0] is the root once parsed
};

[[noreturn]] void refuse(const std::string& what) { throw std::invalid_argument("EMBEDDED_METADATA " + what); }

std::string quoted(std::string_view text) {
  const size_t shown = 48;
  std::string out = "'" + std::string(text.substr(0, shown));
  return out + (text.size() > shown ? "...'" : "'");
}

// Element and attribute names: ASCII letters, digits, '_', '-', ':'. Every name a Vitis kernel XML
// uses is one; a '.' would split boost's property-tree paths, which XRT walks ("project.platform...").
bool plain_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxXmlNameBytes) return false;
  const auto c0 = static_cast<unsigned char>(name[0]);
  if (!(std::isalpha(c0) || c0 == '_')) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(c < 0x80 && (std::isalnum(c) || c == '_' || c == '-' || c == ':'))) return false;
  }
  return true;
}

bool identifier(std::string_view name) {
  if (name.empty() || name.size() > kMaxXrtIdentifierBytes) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(c < 0x80 && (std::isalnum(c) || c == '_'))) return false;
  }
  return true;
}

// The bytes around `at`, printable: where a malformed document goes wrong, bad bytes as \xNN.
std::string excerpt(std::string_view xml, long long at) {
  if (at < 0 || uint64_t(at) > xml.size()) return "an unknown position";
  const size_t from = size_t(at) > 40 ? size_t(at) - 40 : 0, to = std::min(xml.size(), size_t(at) + 8);
  std::string out = "'";
  for (size_t i = from; i < to; ++i) {
    const auto c = static_cast<unsigned char>(xml[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += char(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out + "'";
}

// expat fills a Document under the limits; the first problem stops it and is kept.
class Parser {
 public:
  Parser() : parser_(XML_ParserCreate("UTF-8"), XML_ParserFree) {
    // "UTF-8" overrides any encoding the document declares: the bytes are read, and re-emitted,
    // as UTF-8, so no parser can decode them differently.
    if (!parser_) throw std::bad_alloc();
    XML_SetUserData(parser_.get(), this);
    XML_SetElementHandler(parser_.get(), &Parser::on_start, &Parser::on_end);
    XML_SetCharacterDataHandler(parser_.get(), &Parser::on_text);
    XML_SetStartDoctypeDeclHandler(parser_.get(), &Parser::on_doctype);
    XML_SetEntityDeclHandler(parser_.get(), &Parser::on_entity);
    XML_SetParamEntityParsing(parser_.get(), XML_PARAM_ENTITY_PARSING_NEVER);
  }

  Document parse(std::string_view xml) {
    if (xml.size() > kMaxKernelXmlBytes)
      refuse("is " + std::to_string(xml.size()) + " bytes, more than the " + std::to_string(kMaxKernelXmlBytes >> 10) +
             " KiB a kernel XML may have (a real one is a few KB)");
    if (xml.empty()) refuse("is empty; it is where an xclbin describes its kernels and their arguments");
    const XML_Status status = XML_Parse(parser_.get(), xml.data(), int(xml.size()), XML_TRUE);
    if (!problem_.empty()) refuse(problem_);
    if (status != XML_STATUS_OK) {
      const XML_Error code = XML_GetErrorCode(parser_.get());
      refuse("is not well-formed XML (line " + std::to_string(XML_GetCurrentLineNumber(parser_.get())) + ", column " +
             std::to_string(XML_GetCurrentColumnNumber(parser_.get())) + ": " + XML_ErrorString(code) + ", at " +
             excerpt(xml, XML_GetCurrentByteIndex(parser_.get())) + ")");
    }
    if (doc_.elements.empty()) refuse("holds no XML element");
    return std::move(doc_);
  }

 private:
  void stop(std::string why) {
    if (problem_.empty()) problem_ = std::move(why);
    XML_StopParser(parser_.get(), XML_FALSE);
  }

  std::string where() const { return " (line " + std::to_string(XML_GetCurrentLineNumber(parser_.get())) + ")"; }

  static void XMLCALL on_start(void* self, const XML_Char* name, const XML_Char** attributes) {
    static_cast<Parser*>(self)->start(name, attributes);
  }
  static void XMLCALL on_end(void* self, const XML_Char*) {
    Parser& p = *static_cast<Parser*>(self);
    if (p.problem_.empty() && !p.open_.empty()) p.open_.pop_back();
  }
  static void XMLCALL on_text(void* self, const XML_Char* text, int length) {
    static_cast<Parser*>(self)->add_text(std::string_view(text, size_t(length)));
  }
  static void XMLCALL on_doctype(void* self, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    Parser& p = *static_cast<Parser*>(self);
    p.stop("has a DOCTYPE declaration" + p.where() + "; a kernel XML has none (no entities, no DTD)");
  }
  static void XMLCALL on_entity(void* self, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                                const XML_Char*, const XML_Char*, const XML_Char*) {
    Parser& p = *static_cast<Parser*>(self);
    p.stop("declares an entity" + p.where() + "; a kernel XML has none");
  }

  void start(const char* name_chars, const char** attributes) {
    if (!problem_.empty()) return;
    const std::string_view name(name_chars);
    if (doc_.elements.size() >= kMaxKernelXmlElements)
      return stop("has more than " + std::to_string(kMaxKernelXmlElements) + " elements (a real kernel XML has a few dozen)");
    const int depth = int(open_.size()) + 1;
    if (depth > kMaxKernelXmlDepth)
      return stop("nests deeper than " + std::to_string(kMaxKernelXmlDepth) + " elements" + where());
    if (!plain_name(name))
      return stop("has an element named " + quoted(name) + where() +
                  ", which is not an ASCII name of at most 128 letters, digits, '_', '-' or ':'");
    Element e;
    e.name = std::string(name);
    for (const char** a = attributes; *a; a += 2) {
      const std::string_view key(a[0]), value(a[1]);
      if (e.attributes.size() >= kMaxXmlAttributesPerElement)
        return stop("has a <" + e.name + "> with more than " + std::to_string(kMaxXmlAttributesPerElement) +
                    " attributes" + where());
      if (!plain_name(key))
        return stop("has a <" + e.name + "> attribute named " + quoted(key) + where() + ", which is not a plain ASCII name");
      if (value.size() > kMaxXmlValueBytes)
        return stop("has a <" + e.name + "> attribute " + std::string(key) + " of " + std::to_string(value.size()) +
                    " bytes" + where() + ", more than " + std::to_string(kMaxXmlValueBytes));
      for (char ch : value)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
          return stop("has a <" + e.name + "> attribute " + std::string(key) + " holding a control character" + where());
      e.attributes.emplace_back(std::string(key), std::string(value));
    }
    const size_t index = doc_.elements.size();
    if (open_.empty()) {
      if (index != 0) return stop("has more than one root element");  // expat refuses this too
    } else {
      doc_.elements[open_.back()].children.push_back(index);
    }
    doc_.elements.push_back(std::move(e));
    open_.push_back(index);
  }

  void add_text(std::string_view text) {
    if (!problem_.empty() || open_.empty()) return;
    std::string& into = doc_.elements[open_.back()].text;
    if (into.size() + text.size() > kMaxXmlTextBytes)
      return stop("has a <" + doc_.elements[open_.back()].name + "> with more than " +
                  std::to_string(kMaxXmlTextBytes) + " bytes of text" + where());
    into.append(text);
  }

  std::unique_ptr<XML_ParserStruct, decltype(&XML_ParserFree)> parser_;
  Document doc_;
  std::vector<size_t> open_;
  std::string problem_;
};

// ---------------------------------------------------------------------------------------------
// The values XRT 2.13 converts (xclbin_parser.cpp): numbers through std::stoul(s, nullptr, 0),
// which also takes signs, spaces, octal and trailing junk. Only the unambiguous subset passes, so
// edgemoe and XRT read the same number; anything else is named here rather than thrown as 'stoul'.

const std::string* attribute(const Element& e, std::string_view key) {
  for (const auto& [k, v] : e.attributes)
    if (k == key) return &v;
  return nullptr;
}

bool number(std::string_view s, bool hex_allowed) {
  if (s.empty()) return false;
  if (hex_allowed && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    if (s.size() - 2 > 16) return false;
    for (char c : s.substr(2))
      if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
  }
  if (s.size() > 1 && s[0] == '0') return false;  // stoul would read it as octal
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = uint64_t(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  return true;
}

uint64_t number_value(std::string_view s) { return std::stoull(std::string(s), nullptr, 0); }

class Checker {
 public:
  explicit Checker(const Document& doc) : doc_(doc) {}

  void check() const {
    const Element& project = doc_.elements[0];
    if (project.name != "project") refuse("has root element <" + project.name + ">, expected <project>");
    const Element& platform = only_child(project, "platform");
    const Element& device = only_child(platform, "device");
    const Element& core = only_child(device, "core");
    int kernels = 0;
    for (size_t i : core.children) {
      const Element& child = doc_.elements[i];
      if (child.name == "kernel") check_kernel(child, kernels++);
      if (child.name == "kernelClocks") check_clocks(child);
    }
  }

 private:
  // XRT walks "project.platform.device.core" to the first match at each level: one of each, so
  // the element XRT reads is the one checked here.
  const Element& only_child(const Element& parent, const char* name) const {
    const Element* found = nullptr;
    for (size_t i : parent.children) {
      if (doc_.elements[i].name != name) continue;
      if (found) refuse("has two <" + std::string(name) + "> elements in <" + parent.name + ">; XRT reads one");
      found = &doc_.elements[i];
    }
    if (!found) refuse("has no <" + std::string(name) + "> in <" + parent.name + "> (XRT reads project/platform/device/core)");
    return *found;
  }

  void require_number(const Element& e, const std::string& what, const char* key, bool required, bool hex_allowed,
                      bool empty_allowed = false) const {
    const std::string* v = attribute(e, key);
    if (!v) {
      if (required) refuse(what + " has no " + key + " attribute");
      return;
    }
    if (v->empty() && empty_allowed) return;
    if (!number(*v, hex_allowed))
      refuse(what + ": " + key + "=" + quoted(*v) + " is not a number (" +
             (hex_allowed ? "decimal without leading zeros, or 0x and at most 16 hex digits" : "decimal digits") + ")");
  }

  void check_kernel(const Element& kernel, int ordinal) const {
    const std::string* name = attribute(kernel, "name");
    if (!name) refuse("kernel " + std::to_string(ordinal) + " has no name attribute");
    const std::string what = "<kernel> '" + name->substr(0, kMaxXrtIdentifierBytes) + "'";
    if (!identifier(*name))
      refuse("names a kernel " + quoted(*name) + ", which is not an identifier of at most 64 letters, digits and "
             "underscores (XRT builds a regular expression from it)");
    if (const std::string* mailbox = attribute(kernel, "mailbox")) {
      static const char* const kinds[] = {"none", "in", "out", "inout", "both", "true", "false"};
      bool known = false;
      for (const char* k : kinds) known = known || *mailbox == k;
      if (!known) refuse(what + ": mailbox=" + quoted(*mailbox) + " is none of none, in, out, inout, both, true, false");
    }
    require_number(kernel, what, "countedAutoRestart", false, true);
    require_number(kernel, what, "workGroupSize", false, true, true);
    int args = 0, ports = 0, instances = 0;
    for (size_t i : kernel.children) {
      const Element& c = doc_.elements[i];
      if (c.name == "arg") {
        check_arg(c, what + " <arg> " + std::to_string(args++));
      } else if (c.name == "port") {
        const std::string where = what + " <port> " + std::to_string(ports++);
        const std::string* mode = attribute(c, "mode");
        if (!mode) refuse(where + " has no mode attribute");
        require_number(c, where, "range", *mode == "slave", true);
        require_number(c, where, "dataWidth", false, true, true);
      } else if (c.name == "compileWorkGroupSize" || c.name == "maxWorkGroupSize") {
        for (const char* axis : {"x", "y", "z"}) require_number(c, what + " <" + c.name + ">", axis, true, true);
      } else if (c.name == "string_table") {
        for (size_t j : c.children) {
          const Element& f = doc_.elements[j];
          if (f.name != "format_string") continue;
          require_number(f, what + " <format_string>", "id", true, false);
          if (number_value(*attribute(f, "id")) > UINT32_MAX) refuse(what + " <format_string> id exceeds 32 bits");
          if (!attribute(f, "value")) refuse(what + " <format_string> has no value attribute");
        }
      } else if (c.name == "instance") {
        const std::string where = what + " <instance> " + std::to_string(instances++);
        const std::string* instance = attribute(c, "name");
        if (!instance) refuse(where + " has no name attribute");
        if (!identifier(*instance))
          refuse("names an instance " + quoted(*instance) + " of " + what + ", which is not an identifier of at most 64 "
                 "letters, digits and underscores");
        for (size_t j : c.children) {
          const Element& remap = doc_.elements[j];
          if (remap.name != "addrRemap") continue;
          require_number(remap, where + " <addrRemap>", "base", false, true);
          require_number(remap, where + " <addrRemap>", "range", false, true);
        }
      }
    }
  }

  void check_arg(const Element& arg, const std::string& where) const {
    const std::string* name = attribute(arg, "name");
    if (!name) refuse(where + " has no name attribute");
    const std::string what = where + " '" + name->substr(0, kMaxXrtIdentifierBytes) + "'";
    if (!identifier(*name))
      refuse(where + " is named " + quoted(*name) + ", which is not an identifier of at most 64 letters, digits and "
             "underscores");
    require_number(arg, what, "id", true, true, true);  // an empty id is XRT's "no index"
    const std::string& id = *attribute(arg, "id");
    if (!id.empty() && number_value(id) >= 65536) refuse(what + ": id=" + quoted(id) + " is not an argument index");
    for (const char* key : {"offset", "size", "hostSize"}) require_number(arg, what, key, true, true);
    require_number(arg, what, "hostOffset", false, true);
    require_number(arg, what, "addressQualifier", true, false);
  }

  void check_clocks(const Element& clocks) const {
    for (size_t i : clocks.children) {
      const Element& clock = doc_.elements[i];
      if (clock.name != "clock") continue;
      const std::string* frequency = attribute(clock, "frequency");
      if (!frequency) continue;
      // "300.000000MHz": XRT cuts at "MHz" and reads the integer part.
      std::string_view f(*frequency);
      const size_t unit = f.find("MHz");
      if (unit != std::string_view::npos) {
        if (unit + 3 != f.size()) refuse("<kernelClocks> <clock> frequency=" + quoted(f) + " has text after MHz");
        f = f.substr(0, unit);
      }
      const size_t point = f.find('.');
      std::string_view whole = f.substr(0, point), fraction = point == f.npos ? "" : f.substr(point + 1);
      bool digits = point == f.npos || !fraction.empty();
      for (char c : fraction) digits = digits && c >= '0' && c <= '9';
      if (!number(whole, false) || !digits)
        refuse("<kernelClocks> <clock> frequency=" + quoted(*frequency) + " is not a frequency like 300.000000MHz");
    }
  }

  const Document& doc_;
};

// ---------------------------------------------------------------------------------------------
// Canonical XML: attribute values in double quotes with every markup character escaped, text with
// '<', '>', '&' and CR escaped, no comments, no processing instructions, no DOCTYPE, no layout
// whitespace between elements (XRT reads attributes and children, never an element's text).

void escape_into(std::string* out, std::string_view s, bool attribute_value) {
  for (char c : s) {
    switch (c) {
      case '<': *out += "&lt;"; break;
      case '>': *out += "&gt;"; break;
      case '&': *out += "&amp;"; break;
      case '"': attribute_value ? *out += "&quot;" : *out += c; break;
      case '\'': attribute_value ? *out += "&apos;" : *out += c; break;
      case '\r': *out += "&#13;"; break;
      default: *out += c;
    }
  }
}

bool only_whitespace(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  return true;
}

void emit(const Document& doc, size_t index, std::string* out) {
  const Element& e = doc.elements[index];
  *out += '<';
  *out += e.name;
  for (const auto& [key, value] : e.attributes) {
    *out += ' ';
    *out += key;
    *out += "=\"";
    escape_into(out, value, true);
    *out += '"';
  }
  const bool text = !only_whitespace(e.text);
  if (!text && e.children.empty()) {
    *out += "/>";
    return;
  }
  *out += '>';
  if (text) escape_into(out, e.text, false);
  for (size_t child : e.children) emit(doc, child, out);  // depth <= kMaxKernelXmlDepth
  *out += "</";
  *out += e.name;
  *out += '>';
}

}  // namespace

std::string canonical_kernel_xml(std::string_view xml) {
  const Document doc = Parser().parse(xml);
  Checker(doc).check();
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out.reserve(xml.size() + out.size());
  emit(doc, 0, &out);
  out += '\n';
  return out;
}

}  // namespace edgemoe::fpga
