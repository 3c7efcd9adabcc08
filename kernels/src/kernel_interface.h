// The top kernel's interface, written once. Everything that must agree on it expands this list:
// the kernel's declaration is checked against it (a static_assert on its type in the emulation device,
// and tests/test_kernel_rules.py on its parameter names), the host's KernelArgs
// (csrc/backends/accel/device.h) and the emulation device's call are generated from it, and an XRT
// host binds arguments by the names and kinds in kKernelInterface.
//   BUFFER(name, element type): an m_axi pointer (a DDR buffer the host allocates).
//   SCALAR(name, type): an s_axilite register of 32 bits.
#pragma once

#include "formats.h"

#define EDGEMOE_KERNEL_INTERFACE(BUFFER, SCALAR) \
  BUFFER(images, const edgemoe_hls::pixel_word_t) \
  BUFFER(weights, const edgemoe_hls::weight_word_t) \
  BUFFER(weights_odd, const edgemoe_hls::weight_word_t) \
  BUFFER(params, const edgemoe_hls::fm_t)        \
  BUFFER(x, edgemoe_hls::fm_word_t)              \
  BUFFER(xn, edgemoe_hls::fm_word_t)             \
  BUFFER(qkv, edgemoe_hls::fm_word_t)            \
  BUFFER(hidden, edgemoe_hls::fm_word_t)         \
  BUFFER(outputs, edgemoe_hls::fm_word_t)        \
  BUFFER(trace, ap_uint<32>)                     \
  SCALAR(num_images, int)                        \
  SCALAR(dim, int)                               \
  SCALAR(heads, int)                             \
  SCALAR(grid_h, int)                            \
  SCALAR(grid_w, int)                            \
  SCALAR(patch, int)                             \
  SCALAR(depth, int)                             \
  SCALAR(mlp_hidden, int)                        \
  SCALAR(experts, int)                           \
  SCALAR(expert_hidden, int)                     \
  SCALAR(top_k, int)                             \
  SCALAR(num_tasks, int)                         \
  SCALAR(moe_mask, unsigned)                     \
  SCALAR(task, int)                              \
  SCALAR(attn_scale, edgemoe_hls::fm_t)          \
  SCALAR(embed, int)                             \
  SCALAR(first_stage, int)                       \
  SCALAR(last_stage, int)                        \
  SCALAR(head_channels, int)                     \
  SCALAR(head_out, int)                          \
  SCALAR(head_stages, int)

namespace edgemoe_hls {

// The top function's name, as XRT finds the kernel in an xclbin.
constexpr char kKernelName[] = "m3vit_backbone";

// Images per call: the static bound of the kernel's image loop; the host splits larger batches.
constexpr int kMaxImagesPerRun = 1024;

struct KernelArgSpec {
  const char* name;
  bool is_buffer;  // m_axi pointer; otherwise a 32-bit s_axilite scalar
};

#define EDGEMOE_SPEC_BUFFER(name, type) {#name, true},
#define EDGEMOE_SPEC_SCALAR(name, type) {#name, false},
constexpr KernelArgSpec kKernelInterface[] = {EDGEMOE_KERNEL_INTERFACE(EDGEMOE_SPEC_BUFFER, EDGEMOE_SPEC_SCALAR)};
#undef EDGEMOE_SPEC_BUFFER
#undef EDGEMOE_SPEC_SCALAR
constexpr int kKernelArgCount = int(sizeof(kKernelInterface) / sizeof(kKernelInterface[0]));

// The s_axilite register map Vitis HLS gives this argument list (ap_ctrl_hs/chain): 0x00-0x0C control
// and interrupt registers, then each argument in order, a 32-bit scalar in 8 bytes (data, reserved)
// and a 64-bit pointer in 12 (low, high, reserved). The xclbin's offsets must be exactly these.
constexpr int kFirstArgOffset = 0x10;
constexpr int kScalarStride = 0x8;
constexpr int kPointerStride = 0xC;
constexpr int kRegisterMapBytes = 0x1000;
constexpr int register_offset(int arg) {
  int offset = kFirstArgOffset;
  for (int i = 0; i < kKernelArgCount; ++i)
    if (i < arg) offset += kKernelInterface[i].is_buffer ? kPointerStride : kScalarStride;
  return offset;
}
static_assert(register_offset(kKernelArgCount) <= kRegisterMapBytes, "the arguments must fit the 4 KiB register map");

// The function type the list describes, for checking the declaration: Signature<void, A...>::type.
template <class R, class... A>
struct Signature {
  using type = R(A...);
};

}  // namespace edgemoe_hls

// Expansions that start every argument with a comma, so a list can follow a leading element:
// Signature<void EDGEMOE_KERNEL_INTERFACE(EDGEMOE_AS_PARAM_BUFFER, EDGEMOE_AS_PARAM_SCALAR)>.
#define EDGEMOE_AS_PARAM_BUFFER(name, type) , type*
#define EDGEMOE_AS_PARAM_SCALAR(name, type) , type
