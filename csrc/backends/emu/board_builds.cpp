#include "backends/emu/board_builds.h"

#include <type_traits>

#include "src/m3vit_backbone.h"

// The board builds' symbols (kernels/src/hls_types.h renames them per EDGEMOE_HOST_BOARD_BUILD).
#define EDGEMOE_DECLARE_BOARD_BUILD(board)                        \
  extern "C" edgemoe::emu::KernelFn m3vit_backbone_##board;       \
  extern "C" void m3vit_board_model_##board(edgemoe_ledger::BoardModel*);
EDGEMOE_DECLARE_BOARD_BUILD(zcu102)
EDGEMOE_DECLARE_BOARD_BUILD(u280)
#undef EDGEMOE_DECLARE_BOARD_BUILD

namespace edgemoe::emu {

static_assert(std::is_same<decltype(m3vit_backbone), KernelFn>::value,
              "m3vit_backbone's declaration drifted from EDGEMOE_KERNEL_INTERFACE (kernels/src/kernel_interface.h)");

namespace {
const KernelBuild kEmulation = {"emu", &m3vit_backbone, &m3vit_board_model};
const KernelBuild kBoards[] = {
    {"zcu102", &m3vit_backbone_zcu102, &m3vit_board_model_zcu102},
    {"u280", &m3vit_backbone_u280, &m3vit_board_model_u280},
};
}  // namespace

const KernelBuild& emulation_build() { return kEmulation; }

const KernelBuild* find_board_build(const std::string& board) {
  for (const KernelBuild& b : kBoards)
    if (board == b.name) return &b;
  return nullptr;
}

std::vector<std::string> board_build_names() {
  std::vector<std::string> names;
  for (const KernelBuild& b : kBoards) names.push_back(b.name);
  return names;
}

}  // namespace edgemoe::emu
