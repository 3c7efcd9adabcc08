// Waiting for a kernel run with a deadline, written over any run handle with XRT's wait/abort
// semantics so that the timeout paths are tested without a card (tests/cpp/test_fpga_noop.cpp):
// under the noop shim every run completes at once.
#pragma once

#include <ert.h>

#include <chrono>
#include <exception>
#include <string>

#include "core/backend.h"

namespace edgemoe::fpga {

// Returns when the run completes. Past the deadline it asks XRT to abort the run; only a run that
// turns out to have completed leaves the device usable (DeviceTimeout, call again). An aborted
// command may have been running on the compute unit, which XRT cannot stop and which may still
// write to its buffers: then *unusable says why the device must not be used again (the caller keeps
// the run and every buffer alive) and DeviceTimeout carries it. Any other end state is a
// std::runtime_error.
template <class Run>
void await_run(Run& run, unsigned timeout_ms, const std::string& origin, std::string* unusable) {
  const ert_cmd_state state = run.wait(std::chrono::milliseconds(timeout_ms));
  if (state == ERT_CMD_STATE_COMPLETED) return;
  const std::string limit = std::to_string(timeout_ms / 1000.0).substr(0, 8) + " s";
  if (state != ERT_CMD_STATE_TIMEOUT)
    throw std::runtime_error("the kernel run on " + origin + " ended in XRT command state " +
                             std::to_string(int(state)) + " instead of completing");
  ert_cmd_state stopped = ERT_CMD_STATE_TIMEOUT;
  std::string why;
  try {
    stopped = run.abort();
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (why.empty() && stopped == ERT_CMD_STATE_COMPLETED)
    throw DeviceTimeout("the kernel run on " + origin + " did not finish within the timeout of " + limit +
                        " (it completed while being stopped); the model can be called again (pass a larger "
                        "timeout= for slow models)");
  *unusable = "the fpga device is unusable: a kernel run on " + origin + " exceeded the timeout of " + limit +
              " and may still be running (" +
              (why.empty() ? "XRT left the command in state " + std::to_string(int(stopped)) : "abort failed: " + why) +
              "); its buffers are kept; reset the card and load the model again";
  throw DeviceTimeout(*unusable);
}

}  // namespace edgemoe::fpga
