// The built-in caching policies, one function per file under harness/policies/ (registry.cpp lists
// them). Only the registry includes this.
#pragma once
#include "harness/policies/policy.h"

namespace dc::harness::policies {

PolicyType deepcache_policy();         // deepcache.cpp
PolicyType step_skip_policy();         // step_skip.cpp
PolicyType taylorseer_policy();        // taylorseer.cpp
PolicyType faster_diffusion_policy();  // faster_diffusion.cpp
PolicyType block_cache_policy();       // block_cache.cpp

}  // namespace dc::harness::policies
