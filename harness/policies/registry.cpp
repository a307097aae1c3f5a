#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <mutex>

#include "common/error.h"
#include "harness/policies/policy.h"
#include "harness/policies/registry_entries.h"

namespace dc::harness::policies {
namespace {

// The built-in policies first, then those register_policy() added, in order.
std::deque<PolicyType>& table() {  // a deque: find_policy's pointers stay valid as entries are added
  static std::deque<PolicyType> t = {deepcache_policy(), step_skip_policy(), taylorseer_policy(), faster_diffusion_policy(),
                                     block_cache_policy()};
  return t;
}

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

const PolicyType* find_policy(const std::string& name) {
  const std::lock_guard<std::mutex> lock(table_mutex());
  for (const PolicyType& p : table())
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<std::string> policy_names() {
  const std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> names;
  for (const PolicyType& p : table()) names.push_back(p.name);
  return names;
}

void register_policy(PolicyType type) {
  if (type.name.empty() || !type.read) throw Error("register_policy: a policy needs a name and a read function");
  if (find_policy(type.name)) throw Error(fmt::format("register_policy: a policy named '{}' exists", type.name));
  const std::lock_guard<std::mutex> lock(table_mutex());
  table().push_back(std::move(type));
}

std::vector<int> full_calls_of(const std::vector<models::CallPlan>& schedule) {
  std::vector<int> v;
  for (std::size_t c = 0; c < schedule.size(); ++c)
    if (schedule[c].computes_everything()) v.push_back(static_cast<int>(c));
  return v;
}

}  // namespace dc::harness::policies
