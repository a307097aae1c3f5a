// The fuzz build reads experiments without LibTorch: the policies' settings and schedules are linked
// (harness/policies/*.cpp, torch-free), their per-call states are not. Nothing in the fuzz targets
// samples, so nothing calls these.
#include <memory>

#include "common/error.h"
#include "harness/policies/deepcache_settings.h"

namespace dc::harness::policies {

std::unique_ptr<Policy> DeepCacheSettings::make() const { throw Error("the fuzz build has no sampling (DeepCacheSettings::make)"); }

}  // namespace dc::harness::policies
