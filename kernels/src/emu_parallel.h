// Emulation only, never synthesised: two independent halves of a job on two host threads. The host
// (csrc/backends/emu) installs a runner for the length of a kernel run when its model may use more
// than one thread; without one (testbenches, the latency model, one thread) the halves run one
// after the other. Each half computes exactly what it computes alone: the bits never depend on it.
#pragma once

#ifdef EDGEMOE_EMU_PARALLEL
#include <cstdint>

extern "C" {
typedef void (*edgemoe_emu_pair_fn)(void (*half)(void* ctx, int64_t part), void* ctx);
// Weak: a program without the host (a testbench) links without it and sees a null address.
extern edgemoe_emu_pair_fn edgemoe_emu_pair_runner __attribute__((weak));
}

// fn(0) and fn(1), possibly at the same time.
template <class F>
inline void emu_run_halves(F&& fn) {
  edgemoe_emu_pair_fn runner = &edgemoe_emu_pair_runner != nullptr ? edgemoe_emu_pair_runner : nullptr;
  if (runner == nullptr) {
    fn(int64_t{0});
    fn(int64_t{1});
    return;
  }
  runner([](void* ctx, int64_t part) { (*static_cast<F*>(ctx))(part); }, &fn);
}
#endif
