// The task-conditioned gate (M3ViT's gate_task_represent) reduces to a per-task offset on the
// router logits: [x | f_t] . W = x . W[:D] + f_t . W[D:]. Shared by every backend.
#pragma once

#include <vector>

#include "core/config.h"
#include "core/weights.h"

namespace edgemoe {

// f_t . W[D:] for task `task_id` (index into config.tasks) at MoE block `block`: [num_experts].
std::vector<float> task_gate_logit_bias(const ModelWeights& weights, const ModelConfig& config, int64_t block,
                                        int64_t task_id);

}  // namespace edgemoe
