// One include for the HLS vocabulary: Vitis's own headers under synthesis (or EDGEMOE_VITIS_HEADERS
// for a csim build against a Vitis install), edgemoe's host subset otherwise. Kernel code sees
// the same names either way.
#pragma once

#if defined(__SYNTHESIS__) || defined(EDGEMOE_VITIS_HEADERS)
#include <ap_fixed.h>
#include <ap_int.h>
#include <hls_stream.h>
#else
#include "hls_host/ap_fixed.h"
#include "hls_host/hls_stream.h"
#endif

// Emulation only: independent pieces of work (attention heads, rows of a linear job) may run on
// two OpenMP threads; each piece computes exactly what it computes alone, so results are
// bit-identical. Under synthesis every function runs once over its full range.
#if !defined(__SYNTHESIS__) && defined(_OPENMP)
#define EDGEMOE_EMU_PARALLEL 1
#endif

#ifndef EDGEMOE_KERNEL_CONFIG
#define EDGEMOE_KERNEL_CONFIG "config/emu.h"
#endif
#include EDGEMOE_KERNEL_CONFIG

// A loop bound that is a runtime size clamped to a compile-time maximum: the loop has a static
// maximum trip count (what HLS needs) without an early exit (what vectorising compilers need).
template <int MAX>
inline int upto(int n) {
  return n < MAX ? n : MAX;
}

#define EDGEMOE_STR2(x) #x
#define EDGEMOE_STR(x) EDGEMOE_STR2(x)
