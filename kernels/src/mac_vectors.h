// What flows into and out of the MAC array: one input tile of a row group (T_rows rows x T_in
// lanes) and one output tile of it (rows past the job's end are zero).
#pragma once

#include "schedule.h"

namespace edgemoe_hls {

struct in_vec {
  mac_in_t v[kTrows][kTin];
};
struct out_vec {
  fm_t v[kTrows][kTout];
};

}  // namespace edgemoe_hls
