// The fpga backend of a build without XRT (fpga_unavailable.cpp), compiled into this test whatever
// the main build has: it must say why it is missing, and refuse to run, with exceptions.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "backends/fpga/fpga_backend.h"

int main() {
  int failed = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) ++failed, std::printf("FAIL: %s\n", what);
  };
  const edgemoe::BackendInfo info = edgemoe::fpga::probe_fpga_backend();
  expect(info.name == "fpga" && !info.available, "reported unavailable");
  expect(info.reason.find("no XRT support") != std::string::npos &&
             info.reason.find("libxrt-dev") != std::string::npos,
         "the reason names the missing XRT and how to get it");
  try {
    edgemoe::fpga::make_fpga_backend({}, std::make_shared<edgemoe::ModelWeights>(), 1, {});
    expect(false, "make refuses");
  } catch (const std::runtime_error& e) {
    expect(std::string(e.what()).find("backend 'fpga' is unavailable") == 0, "make's message");
  }
  try {
    edgemoe::fpga::list_fpga_devices();
    expect(false, "device probing refuses");
  } catch (const std::runtime_error&) {
  }
  std::printf("%s\n", failed ? "FAILED" : "all passed");
  return failed ? 1 : 0;
}
