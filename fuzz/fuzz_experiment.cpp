// Experiment YAML -> run specs (harness/config.cpp): yaml-cpp's parser, the YAML -> JSON conversion,
// include/base/baseline/sweep/zip/runs, every key's validation, the sweep-size cap, sampler call
// schedules and the non-uniform full-step search. Includes resolve against experiments/, so the
// shipped config blocks are reachable; the registry answers from fuzz/registry.json.
#include "common/error.h"
#include "harness/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto e = dc::harness::parse_experiment(text, "in.yaml", DC_SOURCE_DIR "/experiments");
    for (const auto& r : e.runs) {
      if (r.run_id.size() != 16 || r.plan.calls.calls.empty()) __builtin_trap();  // every run resolved
      for (int f : r.plan.full_calls)
        if (f < 0 || f >= static_cast<int>(r.plan.calls.calls.size())) __builtin_trap();
      (void)dc::harness::describe_run(r);
    }
  } catch (const dc::Error&) {
  }
  return 0;
}
