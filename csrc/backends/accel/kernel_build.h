// The host's side of the kernel's build query (kernels/src/build_record.h): ask the kernel on a
// device what it was compiled with, refuse one this build cannot drive, and hold its maxima for
// checking models against them.
#pragma once

#include <cstdint>
#include <string>

#include "backends/accel/device.h"
#include "core/config.h"
#include "src/build_record.h"

namespace edgemoe::accel {

struct KernelBuild {
  uint32_t words[edgemoe_hls::kBuildRecordWords] = {};
  std::string origin;      // where the kernel lives, for messages (Device::origin)
  bool assumed = false;    // the device executes nothing (XRT noop): the record is this build's own

  uint32_t operator[](edgemoe_hls::BuildRecordField f) const { return words[f]; }
  std::string config_name() const;
};

// The record's field names (kernels/src/build_record.h), e.g. "max_dim".
const char* build_record_field_name(edgemoe_hls::BuildRecordField field);

// The record of the kernel compiled into this host build (config emu): what formats and interface
// a device's kernel must match.
KernelBuild host_kernel_build();

// Runs the query on the device (one call, first_stage = kBuildQueryStage, the record in a buffer
// bound to `trace`) and checks the answer: std::runtime_error naming the first difference from
// what this build drives (not an edgemoe kernel, another interface, other number formats).
KernelBuild query_kernel_build(Device& device);

// The check alone, on a record already read.
void check_kernel_build(const KernelBuild& build);

// std::invalid_argument naming the first of the build's maxima (or lane constraints) the model
// exceeds.
void check_fits_build(const ModelConfig& config, const KernelBuild& build);

// Why the model's task heads cannot run on the build (its head maxima, the line buffer's width, a
// convolution whose 16 output channels exceed a weight buffer), one sentence; empty when they can.
std::string heads_unfit_reason(const ModelConfig& config, const KernelBuild& build);

// The widest task output padded to whole 16-channel words: conv_4's output (kernels/src/head.h).
long widest_head_outputs(const ModelConfig& config);

// Passes (output-channel slices) head layer `layer` takes on the build (kernels/src/layout.h).
int head_layer_slices(const ModelConfig& config, const KernelBuild& build, int layer);

}  // namespace edgemoe::accel
