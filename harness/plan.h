// `deepcache-bench plan` and `macs`: what an experiment will run, from its resolved form
// (harness/config's RunPlan), and MAC tables of any registered model. Nothing is sampled.
#pragma once
#include <iosfwd>
#include <string>

#include "harness/config.h"

namespace dc::harness {

// One line per run: id, role, settings, model calls and full calls of its resolved plan
// (+ MACs per call when `macs`: builds each distinct model once, random init).
void print_plan(const ExperimentSpec& e, bool macs, std::ostream& out);

// Full-call MACs and partial-call MACs at every skip index k of family/preset, with the step
// average of a uniform DeepCache run of `steps` calls at interval N.
void print_macs(const std::string& family, const std::string& preset, int steps, int interval, std::ostream& out);

}  // namespace dc::harness
