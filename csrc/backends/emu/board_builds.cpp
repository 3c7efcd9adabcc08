#include "backends/emu/board_builds.h"

#include <type_traits>

#include "backends/accel/kernel_build.h"
#include "backends/emu/emu_device.h"
#include "core/isa.h"
#include "src/m3vit_backbone.h"

// The board builds' symbols (kernels/src/hls_types.h renames them per EDGEMOE_HOST_BOARD_BUILD).
#define EDGEMOE_DECLARE_BOARD_BUILD(board)                        \
  extern "C" edgemoe::emu::KernelFn m3vit_backbone_##board;       \
  extern "C" void m3vit_board_model_##board(edgemoe_ledger::BoardModel*);
EDGEMOE_DECLARE_BOARD_BUILD(zcu102)
EDGEMOE_DECLARE_BOARD_BUILD(u280)
#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
EDGEMOE_DECLARE_BOARD_BUILD(emu_avx2)
EDGEMOE_DECLARE_BOARD_BUILD(emu_avx512)
#endif
#undef EDGEMOE_DECLARE_BOARD_BUILD

namespace edgemoe::emu {

static_assert(std::is_same<decltype(m3vit_backbone), KernelFn>::value,
              "m3vit_backbone's declaration drifted from EDGEMOE_KERNEL_INTERFACE (kernels/src/kernel_interface.h)");

namespace {
const KernelBuild kEmulation = {"emu", &m3vit_backbone, &m3vit_board_model};
#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
// The emulation compiled for the wider ISA paths (CMakeLists.txt): same bits, faster loops.
const KernelBuild kEmulationAvx2 = {"emu", &m3vit_backbone_emu_avx2, &m3vit_board_model_emu_avx2};
const KernelBuild kEmulationAvx512 = {"emu", &m3vit_backbone_emu_avx512, &m3vit_board_model_emu_avx512};
#endif
const KernelBuild kBoards[] = {
    {"zcu102", &m3vit_backbone_zcu102, &m3vit_board_model_zcu102},
    {"u280", &m3vit_backbone_u280, &m3vit_board_model_u280},
};
}  // namespace

const KernelBuild& emulation_build() {
#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
  if (isa::active() == "avx512") return kEmulationAvx512;
  if (isa::active() == "avx2") return kEmulationAvx2;
#endif
  return kEmulation;
}

const KernelBuild* find_board_build(const std::string& board) {
  for (const KernelBuild& b : kBoards)
    if (board == b.name) return &b;
  return nullptr;
}

std::vector<BuildLimits> kernel_build_limits() {
  std::vector<BuildLimits> out;
  auto add = [&](const char* name, const accel::KernelBuild& record, const char* device) {
    BuildLimits limits{name, device ? device : "", {}};
    for (int f = 0; f < edgemoe_hls::kBuildRecordWords; ++f) {
      const auto field = static_cast<edgemoe_hls::BuildRecordField>(f);
      limits.record.emplace_back(accel::build_record_field_name(field), record[field]);
    }
    out.push_back(std::move(limits));
  };
  add("emu", accel::host_kernel_build(), nullptr);
  for (const KernelBuild& b : kBoards) {
    EmuDevice device(b);  // the board's own kernel answers the build query
    edgemoe_ledger::BoardModel model{};
    b.board_model(&model);
    add(b.name, accel::query_kernel_build(device), model.device);
  }
  return out;
}

std::vector<std::string> board_build_names() {
  std::vector<std::string> names;
  for (const KernelBuild& b : kBoards) names.push_back(b.name);
  return names;
}

}  // namespace edgemoe::emu
