// The fuzz build reads experiments without LibTorch: the policies' settings and schedules are linked
// (harness/policies/*.cpp, torch-free), their per-call states are not. Nothing in the fuzz targets
// samples, so nothing calls these.
#include <memory>

#include "common/error.h"
#include "harness/policies/block_cache.h"
#include "harness/policies/composite.h"
#include "harness/policies/deepcache_settings.h"
#include "harness/policies/faster_diffusion.h"
#include "harness/policies/step_skip.h"
#include "harness/policies/taylorseer.h"

namespace dc::harness::policies {

namespace {
[[noreturn]] void no_sampling() { throw Error("the fuzz build has no sampling (a policy's per-call state)"); }
}  // namespace

std::unique_ptr<Policy> DeepCacheSettings::make() const { no_sampling(); }
std::unique_ptr<Policy> StepSkipSettings::make() const { no_sampling(); }
std::shared_ptr<Calibration> StepSkipSettings::calibration() const { no_sampling(); }
std::unique_ptr<Policy> TaylorSeerSettings::make() const { no_sampling(); }
std::unique_ptr<Policy> FasterDiffusionSettings::make() const { no_sampling(); }
std::unique_ptr<Policy> BlockCacheSettings::make() const { no_sampling(); }
std::shared_ptr<Calibration> BlockCacheSettings::calibration() const { no_sampling(); }
std::unique_ptr<Policy> CompositeSettings::make() const { no_sampling(); }

}  // namespace dc::harness::policies
