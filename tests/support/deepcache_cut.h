// DeepCache's full and partial calls at skip index k for tests that drive a UNet by hand: the
// requests come from models::deepcache_request (the cut written once), the cached feature lives in
// stage `stage` of a models::StageCache.
#pragma once
#include "models/unet_call.h"

namespace dc::test {

struct DeepCacheCut {
  DeepCacheCut(int num_skips, int k)
      : stage(models::deepcache_stage(num_skips, k)),
        full(models::deepcache_request(num_skips, k, false)),
        partial(models::deepcache_request(num_skips, k, true)) {}
  int stage;
  models::CallRequest full, partial;
};

}  // namespace dc::test
