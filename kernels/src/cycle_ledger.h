// The cycle ledger: the latency model's input, reported by the kernel code itself. In host builds
// every pipelined loop reports, next to its pragma and before it runs, its trip count and the II
// and depth that pragma declares (the constants of schedule.h), the DDR bytes it moves on which
// m_axi bundle and at what beat width, and its MACs. A dataflow region reports its processes
// apart, so only they overlap. The host attaches a ledger only to estimate a board
// (csrc/backends/emu/latency_model.cpp); unattached, a report is one branch per loop run.
// Under synthesis every report is an empty inline function.
//
// Not renamed per board build: the host links the emulation build and the board builds together
// and reads one ledger type from all of them.
#pragma once

namespace edgemoe_ledger {

// What the time is spent on; the host prints one row per (stage, unit).
#define EDGEMOE_LEDGER_UNITS(UNIT)          \
  UNIT(kUnitPosEmbed, "pos embed copy")     \
  UNIT(kUnitPatchEmbed, "patch embedding")  \
  UNIT(kUnitLayerNorm, "layernorm")         \
  UNIT(kUnitWeights, "weight fetch")        \
  UNIT(kUnitQkv, "qkv")                     \
  UNIT(kUnitAttention, "attention")         \
  UNIT(kUnitProj, "proj")                   \
  UNIT(kUnitFc1, "mlp fc1")                 \
  UNIT(kUnitFc2, "mlp fc2")                 \
  UNIT(kUnitGate, "gate + routing")         \
  UNIT(kUnitExpertFc1, "expert fc1")        \
  UNIT(kUnitExpertFc2, "expert fc2")        \
  UNIT(kUnitHeadConv, "head conv")          \
  UNIT(kUnitHeadUpsample, "head upsample")  \
  UNIT(kUnitTrace, "trace")

#define EDGEMOE_LEDGER_UNIT_ENUM(id, label) id,
enum Unit { EDGEMOE_LEDGER_UNITS(EDGEMOE_LEDGER_UNIT_ENUM) kUnitCount };
#undef EDGEMOE_LEDGER_UNIT_ENUM

// The kernel's m_axi bundles (m3vit_backbone.cpp's INTERFACE pragmas).
#define EDGEMOE_LEDGER_PORTS(PORT) \
  PORT(kPortActIn, "act_in")       \
  PORT(kPortWeights, "weights")    \
  PORT(kPortWeightsOdd, "weights_odd") \
  PORT(kPortParams, "params")      \
  PORT(kPortAct, "act")            \
  PORT(kPortScratch0, "scratch0")  \
  PORT(kPortScratch1, "scratch1")  \
  PORT(kPortScratch2, "scratch2")

#define EDGEMOE_LEDGER_PORT_ENUM(id, label) id,
enum Port : int { EDGEMOE_LEDGER_PORTS(EDGEMOE_LEDGER_PORT_ENUM) kPortCount, kNoPort = -1 };  // int: room for the transfer flag
#undef EDGEMOE_LEDGER_PORT_ENUM

// How a loop's transfers on a port reach memory. HLS bursts only a pipelined loop whose addresses are
// affine in the loop variable, unconditional and in order (hardware.md, "Bursts"); any other loop
// issues one transaction per beat, so the port moves a beat only every read latency / outstanding
// requests cycles. Every memory loop names its class at its report (burst(...) or single_beat(...));
// tests/test_kernel_rules.py checks that a loop declared to burst has the address pattern it needs.
constexpr int kSingleBeatFlag = 0x100;
constexpr Port burst(Port p) { return p; }
constexpr Port single_beat(Port p) { return Port(int(p) | kSingleBeatFlag); }
constexpr Port port_of(Port p) { return int(p) < 0 ? p : Port(int(p) & ~kSingleBeatFlag); }
constexpr bool is_single_beat(Port p) { return int(p) >= 0 && (int(p) & kSingleBeatFlag) != 0; }

// Stage row 0 is the patch embedding; row 1 + s is stage s (2b: block b's attention half, 2b+1
// its MLP or MoE half); the task head's stages follow the backbone's largest: stage kHeadStage + k
// is head.stage0..3 (k = 0..3: conv_k and its upsampling; the LayerNorm in stage 0), head.logits (4)
// and the output's upsampling (5), the names of core/trace.h.
constexpr int kHeadStage = 2 * 32;
constexpr int kHeadStages = 6;
constexpr int kMaxStageRows = 1 + 2 * 32 + kHeadStages;
constexpr int kMaxRegionProcesses = 6;

struct Cell {
  long long cycles;          // wall cycles: per loop max(compute, memory) + depth; regions overlap
  long long compute_cycles;  // trips x II + depth
  long long memory_cycles;   // beats at the port's width, limited by the platform's bandwidth
  long long bytes;           // DDR/HBM bytes read and written
  long long macs;            // useful multiply-accumulates
  long long mac_slots;       // MAC lanes x cycles of the loops that do MACs (utilisation's denominator)
  long long loop_runs;       // pipelined loop invocations
  long long single_beat_bytes;  // of `bytes`, those moved one transaction per beat
};

// Per bundle: what the platform gives one m_axi port, as bytes per 1000 kernel cycles (integers,
// so kernel headers stay free of floating point), and the read latency a loop's first beat waits.
struct PortModel {
  long long bytes_per_kcycle;
  int latency;
  int outstanding;  // read or write requests in flight (the INTERFACE pragma's num_*_outstanding)
};

constexpr int kMaxRegionDepth = 2;  // a job's dataflow region inside a fetch-while-run region

struct Region {
  int process;
  int mac_lanes;  // the region's MAC lanes are busy (or idle) for the whole region
  long long cycles[kMaxRegionProcesses], compute[kMaxRegionProcesses], memory[kMaxRegionProcesses];
  int unit[kMaxRegionProcesses];  // what each process is (its loops' unit); -1: none yet
};

struct Ledger {
  PortModel ports[kPortCount];
  long long device_bytes_per_kcycle;  // all ports together (the board's memory bandwidth)
  int stage_row;
  Cell cells[kMaxStageRows][kUnitCount];
  int depth;     // open dataflow regions
  int overflow;  // regions opened beyond kMaxRegionDepth (counted, so their ends match)
  Region regions[kMaxRegionDepth];
};

#ifdef __SYNTHESIS__
inline void stage(int) {}
inline void loop(Unit, long long, int, int, Port = kNoPort, long long = 0, int = 1, long long = 0, int = 0,
                 Port = kNoPort, long long = 0, int = 1) {}
inline void region_begin() {}
inline void region_process(int) {}
inline void region_end(Unit) {}
inline bool attached() { return false; }
#else
// The one ledger every kernel build linked into the host reports to (shared storage).
inline Ledger*& active() {
  static Ledger* ledger = nullptr;
  return ledger;
}
// The reporting functions have internal linkage: each kernel build keeps its own copy, compiled for
// its own ISA (CMakeLists.txt builds the emulation per ISA path), so the linker can never hand a
// baseline caller a copy with AVX instructions in it.
namespace {
inline bool attached() { return active() != nullptr; }

// The stage whose rows the next reports go to (-1: the patch embedding).
inline void stage(int s) {
  if (Ledger* l = active()) l->stage_row = 1 + s < 0 ? 0 : (1 + s < kMaxStageRows ? 1 + s : kMaxStageRows - 1);
}

// Cycles a port needs for `bytes` in beats of `beat_bytes`: one beat per cycle at most (an element
// type that is not widened costs a beat per element), and no faster than the platform's port.
// Single beats: each waits the read latency, with `outstanding` in flight at once.
inline long long port_cycles(const Ledger& l, Port tagged, long long bytes, int beat_bytes) {
  const Port port = port_of(tagged);
  if (port == kNoPort || bytes <= 0) return 0;
  const PortModel& m = l.ports[port];
  const long long beats = (bytes + beat_bytes - 1) / beat_bytes;
  const long long per_beat = is_single_beat(tagged) && m.outstanding > 0 ? (m.latency + m.outstanding - 1) / m.outstanding : 1;
  const long long issued = beats * (per_beat > 1 ? per_beat : 1);
  const long long bandwidth = m.bytes_per_kcycle > 0 ? m.bytes_per_kcycle : 1;
  const long long limited = (bytes * 1000 + bandwidth - 1) / bandwidth;
  return issued > limited ? issued : limited;
}

// Time spent by a process of the innermost open region, or (none open) by a unit of the stage.
inline void add_time(Ledger& l, Unit unit, long long wall, long long compute, long long memory) {
  if (l.depth > 0) {
    Region& r = l.regions[l.depth - 1];
    r.cycles[r.process] += wall;
    r.compute[r.process] += compute;
    r.memory[r.process] += memory;
    if (r.unit[r.process] < 0) r.unit[r.process] = unit;
    return;
  }
  Cell& c = l.cells[l.stage_row][unit];
  c.cycles += wall;
  c.compute_cycles += compute;
  c.memory_cycles += memory;
}

// One run of a pipelined loop: `trips` iterations at `ii`, `depth` cycles to drain; it moves
// `bytes` on `port` (and `bytes2` on `port2`) in beats of `beat_bytes`, and does `macs` MACs on
// `mac_lanes` lanes. The ports run concurrently, within the board's total bandwidth.
inline void loop(Unit unit, long long trips, int ii, int depth, Port port = kNoPort, long long bytes = 0,
                 int beat_bytes = 1, long long macs = 0, int mac_lanes = 0, Port port2 = kNoPort,
                 long long bytes2 = 0, int beat_bytes2 = 1) {
  Ledger* l = active();
  if (!l || trips <= 0) return;
  const long long issue = trips * ii;
  long long memory = port_cycles(*l, port, bytes, beat_bytes);
  const long long memory2 = port_cycles(*l, port2, bytes2, beat_bytes2);
  memory = memory > memory2 ? memory : memory2;
  const long long device = l->device_bytes_per_kcycle > 0 ? l->device_bytes_per_kcycle : 1;
  const long long shared = ((bytes + bytes2) * 1000 + device - 1) / device;
  if (bytes + bytes2 > 0 && shared > memory) memory = shared;
  int latency = 0;
  if (port != kNoPort && bytes > 0) latency = l->ports[port_of(port)].latency;
  if (port2 != kNoPort && bytes2 > 0 && l->ports[port_of(port2)].latency > latency)
    latency = l->ports[port_of(port2)].latency;
  const long long wall = (issue > memory ? issue : memory) + depth + latency;
  Cell& c = l->cells[l->stage_row][unit];
  c.bytes += bytes + bytes2;
  c.single_beat_bytes += (is_single_beat(port) ? bytes : 0) + (is_single_beat(port2) ? bytes2 : 0);
  c.macs += macs;
  c.loop_runs += 1;
  if (l->depth > 0) {
    Region& r = l->regions[l->depth - 1];
    r.mac_lanes = mac_lanes > r.mac_lanes ? mac_lanes : r.mac_lanes;
  } else {
    c.mac_slots += mac_lanes > 0 ? wall * mac_lanes : 0;
  }
  add_time(*l, unit, wall, issue + depth, memory + latency);
}

// A DATAFLOW region: its processes run concurrently, so it takes as long as the slowest.
inline void region_begin() {
  Ledger* l = active();
  if (!l) return;
  if (l->depth >= kMaxRegionDepth) {  // deeper nesting is charged to the enclosing region's process
    ++l->overflow;
    return;
  }
  Region& r = l->regions[l->depth++];
  r.process = 0;
  r.mac_lanes = 0;
  for (int p = 0; p < kMaxRegionProcesses; ++p) {
    r.cycles[p] = r.compute[p] = r.memory[p] = 0;
    r.unit[p] = -1;
  }
}
inline void region_process(int p) {
  Ledger* l = active();
  if (l && l->depth > 0) l->regions[l->depth - 1].process = p < 0 ? 0 : (p < kMaxRegionProcesses ? p : kMaxRegionProcesses - 1);
}
// The region's time is its slowest process. Nested in another region, it is time of that region's
// current process. Outermost, process 0's unit is charged process 0's time and the slowest
// process's unit the rest (a fetch hidden behind a job costs nothing; its excess shows as the
// fetch's time).
inline void region_end(Unit unit) {
  Ledger* l = active();
  if (!l) return;
  if (l->overflow > 0) {
    --l->overflow;
    return;
  }
  if (l->depth == 0) return;
  Region r = l->regions[--l->depth];
  int slowest = 0;
  long long compute = 0, memory = 0;
  for (int p = 0; p < kMaxRegionProcesses; ++p) {
    if (r.unit[p] < 0) r.unit[p] = unit;
    if (r.cycles[p] > r.cycles[slowest]) slowest = p;
    compute = r.compute[p] > compute ? r.compute[p] : compute;
    memory = r.memory[p] > memory ? r.memory[p] : memory;
  }
  l->cells[l->stage_row][unit].mac_slots += r.cycles[slowest] * r.mac_lanes;
  if (l->depth > 0) {
    add_time(*l, unit, r.cycles[slowest], compute, memory);
    return;
  }
  add_time(*l, Unit(r.unit[0]), r.cycles[0], 0, 0);
  if (slowest != 0) add_time(*l, Unit(r.unit[slowest]), r.cycles[slowest] - r.cycles[0], 0, 0);
  // Work per unit, for its bound: processes of one unit overlap (their maximum), units add.
  for (int p = 0; p < kMaxRegionProcesses; ++p) {
    bool first = true;
    long long unit_compute = 0, unit_memory = 0;
    for (int q = 0; q < kMaxRegionProcesses; ++q) {
      if (r.unit[q] != r.unit[p]) continue;
      first = first && q >= p;
      unit_compute = r.compute[q] > unit_compute ? r.compute[q] : unit_compute;
      unit_memory = r.memory[q] > unit_memory ? r.memory[q] : unit_memory;
    }
    if (!first) continue;
    Cell& c = l->cells[l->stage_row][r.unit[p]];
    c.compute_cycles += unit_compute;
    c.memory_cycles += unit_memory;
  }
}
}  // namespace
#endif

// What a board build says about itself and its board, for the latency and resource model.
struct BoardModel {
  const char* config;  // EDGEMOE_CFG_NAME
  const char* device;  // e.g. "XCZU9EG"
  int clock_mhz;       // the default kernel clock (the board's config says why)
  // What the platform gives: an m_axi port's width (bytes per kernel cycle) and bandwidth, and all
  // ports' together (MB/s); the model converts them to bytes per 1000 cycles at its clock.
  int port_width_bytes;
  long long port_mbps, device_mbps;
  int read_latency;    // cycles an m_axi read's first beat waits
  int outstanding[kPortCount];  // requests in flight, per port (schedule.h: axi_outstanding)
  // Resource estimate of this build (schedule.h) and the device's totals.
  int dsp, bram36, uram, lut;
  int device_dsp, device_bram36, device_uram, device_lut;
  // Per SLR (a multi-die device; slrs = 1 otherwise): the floorplan's share of the estimate, and
  // what the SLR leaves the kernel (its third of the device less the shell's part there).
  int slrs;
  int slr_dsp[3], slr_bram36[3], slr_uram[3], slr_lut[3];
  int slr_device_dsp[3], slr_device_bram36[3], slr_device_uram[3], slr_device_lut[3];
};

}  // namespace edgemoe_ledger
