// The built-in caching policies, one function per file under harness/policies/ (registry.cpp lists
// them). Only the registry includes this.
#pragma once
#include "harness/policies/policy.h"

namespace dc::harness::policies {

PolicyType deepcache_policy();  // deepcache.cpp

}  // namespace dc::harness::policies
