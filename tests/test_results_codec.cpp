// The results codec (harness/results_codec.h): what write_run stores, read_result and
// read_run_result give back, field by field and array by array; a failed run stores its header
// only; files of earlier builds (deepcache's final power as its own attribute) read as before.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "harness/hdf5.h"
#include "harness/results_store.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
namespace h5 = dc::h5;
using namespace dc::harness;

namespace {

RunSpec codec_spec() {
  const auto e = parse_experiment(R"(experiment: codec
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 4}
  samples: {n: 3, batch: 2, seed: 1}
runs:
  - {cache.enabled: true, cache.k: 1, cache.interval: 2, cache.schedule: nonuniform, cache.center: 2, cache.power: 2.0}
)",
                                  "codec.yaml", ".");
  return e.runs.back();
}

// Every stored field set to a value no default has.
RunResult full_result() {
  RunResult r;
  r.spec = codec_spec();
  r.shard_index = 1;
  r.shard_count = 3;
  r.partial = "shards 0, 1 of 3";
  r.first_sample = 2;
  r.samples = 1;
  r.resumed_samples = 1;
  r.timesteps = {750, 500, 250, 1};
  r.full_calls = {0, 2};
  r.is_full = {1, 0, 1, 0};
  r.computed = {{1, 1, 1}, {0, 0, 1}, {1, 1, 1}, {}};  // the last call skipped whole
  r.stage_names = {"input.0", "middle", "output.0"};
  r.call_macs = {3e6, 1e6, 3e6, 0};
  r.call_macs_all = {4e6, 1.5e6, 4e6, 0};
  r.step_time_ms = {2.5, 1.25, 2.5, 0.125};
  r.policy_facts = {{"final_power", 1.375}};
  r.macs_full = 3e6, r.macs_partial = 0.5e6, r.macs_step_average = 1.75e6;
  r.macs_full_all = 4e6, r.macs_partial_all = 0.75e6, r.macs_step_average_all = 2.375e6;
  r.seconds = 0.75;
  r.batch_seconds = {0.5, 0.25};
  r.batch_rows = {2, 1};
  r.repeat_seconds = {0.375};
  r.repeat_rows = {2};
  r.metric_seconds = 0.0625;
  r.usage = {0.5, 0.125, 1234, 5};
  r.usage_seconds = 0.7;
  r.load_start = 0.25, r.load_end = 1.5;
  r.cores = 2;
  r.quality = {{"fid_fmnist", 42.5}, {"fid_fmnist_ci_low", 40.0}};
  r.metric_provenance["fid_fmnist"] = {{"implementation", "classifier"}, {"samples", 3}};
  r.weights_note = "random init (untrained)";
  r.device = "cpu";
  r.thread_settings = "torch intra-op threads=1";
  r.cpu = "a CPU";
  r.cpu_kernels = "ATen=AVX2";
  r.torch_version = "1.13";
  r.git_revision = "v1-dirty";
  r.started_at = "2026-12-07T22:00:00Z";
  r.finished_at = "2026-12-07T22:00:01Z";
  r.timing_clock = "steady_clock";
  r.images = torch::arange(2 * 1 * 4 * 4, torch::kInt64).remainder(256).to(torch::kUInt8).reshape({2, 1, 4, 4});
  r.grid = torch::full({1, 4, 8}, 7, torch::kUInt8);
  r.similarity["up.0"] = torch::eye(4, torch::kFloat64);
  r.similarity_fraction["up.0"] = torch::full({4}, 0.5, torch::kFloat64);
  r.quality_arrays["class_labels"] = torch::tensor({3, 1}, torch::kInt64);
  r.metric_states["fid_fmnist"]["count"] = torch::tensor({2.0}, torch::kFloat64);
  r.metric_states["fid_fmnist"]["sum"] = torch::ones({5, 2}, torch::kFloat64);
  return r;
}

void expect_same_record(const RunRecord& a, const RunRecord& b) {
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.shard_index, b.shard_index);
  EXPECT_EQ(a.shard_count, b.shard_count);
  EXPECT_EQ(a.partial, b.partial);
  EXPECT_EQ(a.first_sample, b.first_sample);
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.resumed_samples, b.resumed_samples);
  EXPECT_EQ(a.timesteps, b.timesteps);
  EXPECT_EQ(a.full_calls, b.full_calls);
  EXPECT_EQ(a.is_full, b.is_full);
  EXPECT_EQ(a.computed, b.computed);
  EXPECT_EQ(a.stage_names, b.stage_names);
  EXPECT_EQ(a.call_macs, b.call_macs);
  EXPECT_EQ(a.call_macs_all, b.call_macs_all);
  EXPECT_EQ(a.step_time_ms, b.step_time_ms);
  EXPECT_EQ(a.policy_facts, b.policy_facts);
  EXPECT_EQ(a.macs_full, b.macs_full);
  EXPECT_EQ(a.macs_partial, b.macs_partial);
  EXPECT_EQ(a.macs_step_average, b.macs_step_average);
  EXPECT_EQ(a.macs_full_all, b.macs_full_all);
  EXPECT_EQ(a.macs_partial_all, b.macs_partial_all);
  EXPECT_EQ(a.macs_step_average_all, b.macs_step_average_all);
  EXPECT_EQ(a.seconds, b.seconds);
  EXPECT_EQ(a.batch_seconds, b.batch_seconds);
  EXPECT_EQ(a.batch_rows, b.batch_rows);
  EXPECT_EQ(a.repeat_seconds, b.repeat_seconds);
  EXPECT_EQ(a.repeat_rows, b.repeat_rows);
  EXPECT_EQ(a.metric_seconds, b.metric_seconds);
  EXPECT_EQ(a.usage.user_seconds, b.usage.user_seconds);
  EXPECT_EQ(a.usage.system_seconds, b.usage.system_seconds);
  EXPECT_EQ(a.usage.minor_faults, b.usage.minor_faults);
  EXPECT_EQ(a.usage.major_faults, b.usage.major_faults);
  EXPECT_EQ(a.usage_seconds, b.usage_seconds);
  EXPECT_EQ(a.load_start, b.load_start);
  EXPECT_EQ(a.load_end, b.load_end);
  EXPECT_EQ(a.cores, b.cores);
  EXPECT_EQ(a.quality, b.quality);
  for (std::string RunRecord::*f : {&RunRecord::weights_note, &RunRecord::device, &RunRecord::thread_settings, &RunRecord::cpu, &RunRecord::cpu_kernels,
                  &RunRecord::torch_version, &RunRecord::git_revision, &RunRecord::started_at, &RunRecord::finished_at,
                  &RunRecord::timing_clock})
    EXPECT_EQ(a.*f, b.*f);
}

bool same(const torch::Tensor& a, const torch::Tensor& b) {
  return a.defined() && b.defined() && a.scalar_type() == b.scalar_type() && torch::equal(a, b);
}

}  // namespace

TEST(ResultsCodec, EveryFieldAndArrayReadsBackAsWritten) {
  const std::string path = dc::test::temp_dir() + "/codec.h5";
  const RunResult r = full_result();
  ResultsStore(path, "codec", "the codec's test").commit(r);
  const std::string key = result_key(r.spec.run_id, r.shard_index, r.shard_count);

  const RunResult back = read_run_result(path, key);
  expect_same_record(r, back);
  EXPECT_EQ(back.spec.run_id, r.spec.run_id);
  EXPECT_EQ(back.spec.resolved, r.spec.resolved);
  EXPECT_EQ(back.spec.name, r.spec.name);
  EXPECT_EQ(back.spec.order, r.spec.order);
  EXPECT_TRUE(same(back.images, r.images));
  EXPECT_TRUE(same(back.grid, r.grid));
  EXPECT_TRUE(same(back.similarity.at("up.0"), r.similarity.at("up.0")));
  EXPECT_TRUE(same(back.similarity_fraction.at("up.0"), r.similarity_fraction.at("up.0")));
  EXPECT_TRUE(same(back.quality_arrays.at("class_labels"), r.quality_arrays.at("class_labels")));
  ASSERT_EQ(back.metric_states.size(), 1u);
  EXPECT_TRUE(same(back.metric_states.at("fid_fmnist").at("sum"), r.metric_states.at("fid_fmnist").at("sum")));
  EXPECT_TRUE(same(back.metric_states.at("fid_fmnist").at("count"), r.metric_states.at("fid_fmnist").at("count")));
  EXPECT_TRUE(back.metric_provenance.empty()) << "written only: merge computes the values and their provenance again";

  // The torch-free reader: the same fields, the state shapes without the states, the arrays asked for.
  const StoredRunFile f = read_result(path, key, kNoArrays);
  expect_same_record(r, f);
  EXPECT_EQ(f.key, key);
  EXPECT_EQ(f.run_id, r.spec.run_id);
  EXPECT_EQ(f.description, describe_run(r.spec));
  EXPECT_EQ(f.model_calls, 4);
  EXPECT_EQ(f.state_shapes.at("fid_fmnist/sum"), (std::vector<int64_t>{5, 2}));
  EXPECT_FALSE(f.arrays.images || f.arrays.grid) << "not asked for";
  EXPECT_TRUE(f.arrays.metric_states.empty() && f.arrays.similarity.empty());
  EXPECT_EQ(f.scalars.at("metrics/seconds_per_image"), 0.75) << "the derived timings are stored beside the fields";
  EXPECT_EQ(f.scalars.at("metrics/full_call_ms"), 2.5);
  EXPECT_EQ(f.scalars.at("metrics/partial_call_ms"), (1.25 + 0.125) / 2);
  {
    auto file = h5::open_file(path);
    auto prov = h5::open_group(file.id(), "runs/" + key + "/provenance/fid_fmnist");
    EXPECT_EQ(h5::get_attr_string(prov.id(), "implementation"), "classifier");
    EXPECT_EQ(h5::get_attr_double(prov.id(), "samples"), 3);
  }
  const ResultsFileInfo info = read_results_info(path);
  EXPECT_EQ(info.experiment, "codec");
  EXPECT_EQ(info.description, "the codec's test");
  EXPECT_THROW(read_result(path, "no-such-run", kNoArrays), dc::Error);
}

TEST(ResultsCodec, AFailedRunStoresItsHeaderAndError) {
  const std::string path = dc::test::temp_dir() + "/failed.h5";
  RunResult r = full_result();
  r.status = "failed";
  r.error = "out of memory";
  ResultsStore(path, "codec", "").commit(r);
  const auto runs = read_results_file(path, kAllArrays);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "failed");
  EXPECT_EQ(runs[0].error, "out of memory");
  EXPECT_EQ(runs[0].device, "cpu");
  EXPECT_TRUE(runs[0].timesteps.empty() && runs[0].scalars.empty() && !runs[0].arrays.images);
  EXPECT_EQ(runs[0].policy_facts, nlohmann::json::object());
}

// Files of earlier builds: deepcache's final power as the float64 attribute final_power, no
// computed / call_macs / *_all counts: read with the defaults the README gives.
TEST(ResultsCodec, FilesOfEarlierBuildsReadWithTheirDefaults) {
  const std::string path = dc::test::temp_dir() + "/old.h5";
  RunResult r = full_result();
  r.computed.clear();
  r.call_macs.clear();
  r.call_macs_all.clear();
  ResultsStore(path, "codec", "").commit(r);
  const std::string key = result_key(r.spec.run_id, r.shard_index, r.shard_count);
  {
    auto f = h5::open_file(path, /*write=*/true);
    auto g = h5::open_group(f.id(), "runs/" + key);
    ASSERT_GE(H5Adelete(g.id(), "policy_facts"), 0);
    h5::set_attr(g.id(), "final_power", 1.25);
    ASSERT_GE(H5Ldelete(g.id(), "macs/full_all", H5P_DEFAULT), 0);
  }
  const StoredRunFile f = read_result(path, key, kNoArrays);
  EXPECT_EQ(f.policy_facts, (nlohmann::json{{"final_power", 1.25}}));
  EXPECT_TRUE(f.computed.empty() && f.call_macs.empty());
  EXPECT_EQ(f.macs_full_all, 0.0);
  EXPECT_EQ(f.macs_partial_all, r.macs_partial_all);
}
