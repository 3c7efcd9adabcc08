// The tables of the ISA paths compiled into this build (CMakeLists.txt, EDGEMOE_ISAS), and the one
// core/isa.h picks.
#include <cstring>
#include <stdexcept>

#include "backends/cpu/isa/kernels.h"
#include "core/isa.h"

namespace edgemoe::cpu {

#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
namespace isa_baseline { extern const IsaKernels kTable; }
namespace isa_avx2 { extern const IsaKernels kTable; }
namespace isa_avx512 { extern const IsaKernels kTable; }
static const IsaKernels* const kTables[] = {&isa_baseline::kTable, &isa_avx2::kTable, &isa_avx512::kTable};
#else
namespace isa_native { extern const IsaKernels kTable; }
static const IsaKernels* const kTables[] = {&isa_native::kTable};
#endif

const IsaKernels* isa_kernels(const char* name) {
  for (const IsaKernels* t : kTables)
    if (std::strcmp(t->name, name) == 0) return t;
  return nullptr;
}

const IsaKernels& isa_kernels() {
  static const IsaKernels* active = isa_kernels(isa::active().c_str());
  if (!active) throw std::logic_error("ISA path " + isa::active() + " has no kernel table");
  return *active;
}

}  // namespace edgemoe::cpu
