// This ISA path's kernel table (isa/kernels.h), named after the path it is compiled for.
#include "backends/cpu/isa/kernels.h"

#define EDGEMOE_STR2(x) #x
#define EDGEMOE_STR(x) EDGEMOE_STR2(x)

namespace edgemoe::cpu::EDGEMOE_ISA_NS {

extern const int64_t kAttentionColTile;
extern const int kAttentionRows;
void attention_blocks(const AttentionArgs& a, int64_t bh, int64_t first, int64_t last, float* scores);
void layer_norm(const float* x, int64_t x_stride, int64_t first, int64_t last, int64_t dim, const float* w,
                const float* b, float eps, float* y, int64_t y_stride);
void upsample_hwc_rows(const float* src, float* dst, int64_t first, int64_t last, int64_t H, int64_t W, int64_t C);
void upsample_blocked_rows(const float* src, float* dst, int64_t first, int64_t last, int64_t channels, int64_t H,
                           int64_t W, int64_t block);

// EDGEMOE_ISA_NS is isa_<name>: the table carries <name>.
extern const IsaKernels kTable = {EDGEMOE_STR(EDGEMOE_ISA_NS) + 4, kAttentionColTile, kAttentionRows,
                                  attention_blocks, layer_norm, upsample_hwc_rows, upsample_blocked_rows};

}  // namespace edgemoe::cpu::EDGEMOE_ISA_NS
