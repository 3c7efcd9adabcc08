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
// two host threads (emu_parallel.h); each piece computes exactly what it computes alone, so results
// are bit-identical. Under synthesis every function runs once over its full range.
#if !defined(__SYNTHESIS__)
#define EDGEMOE_EMU_PARALLEL 1
#include "emu_parallel.h"
#endif
// Emulation with edgemoe's host headers: the MAC array's exact sums in a CPU's order (bit for bit
// the pipelined loop's; the cycle ledger still runs the loop).
#if !defined(__SYNTHESIS__) && !defined(EDGEMOE_VITIS_HEADERS)
#define EDGEMOE_EMU_EXACT_MAC 1
#include "hls_host/exact_mac.h"
#endif

// The board is a plain define (-DEDGEMOE_BOARD_ZCU102), not a quoted path: it survives shell, v++
// and Tcl quoting unchanged. No define: the emulation build.
#if defined(EDGEMOE_BOARD_ZCU102)
#include "../config/zcu102.h"
#elif defined(EDGEMOE_BOARD_U280)
#include "../config/u280.h"
#else
#include "../config/emu.h"
#endif
#if defined(EDGEMOE_BOARD_ZCU102) && defined(EDGEMOE_BOARD_U280)
#error "define one board: EDGEMOE_BOARD_ZCU102 or EDGEMOE_BOARD_U280"
#endif

// A board build linked into the host next to the emulation build (the latency model runs each
// board's own loops, csrc/backends/emu/board_builds.cpp): its own namespace and C symbols, so the
// builds' inline functions never merge. -DEDGEMOE_HOST_BOARD_BUILD=<config> with the board define.
#if defined(EDGEMOE_HOST_BOARD_BUILD) && !defined(__SYNTHESIS__)
#define EDGEMOE_PASTE2(a, b) a##b
#define EDGEMOE_PASTE(a, b) EDGEMOE_PASTE2(a, b)
#define edgemoe_hls EDGEMOE_PASTE(edgemoe_hls_, EDGEMOE_HOST_BOARD_BUILD)
#define m3vit_backbone EDGEMOE_PASTE(m3vit_backbone_, EDGEMOE_HOST_BOARD_BUILD)
#define m3vit_board_model EDGEMOE_PASTE(m3vit_board_model_, EDGEMOE_HOST_BOARD_BUILD)
#endif

// A loop bound that is a runtime size clamped to a compile-time maximum: the loop has a static
// maximum trip count (what HLS needs) without an early exit (what vectorising compilers need).
template <int MAX>
inline int upto(int n) {
  return n < MAX ? n : MAX;
}

#define EDGEMOE_STR2(x) #x
#define EDGEMOE_STR(x) EDGEMOE_STR2(x)
