// Results across CPUs: the same experiment run by two deepcache-bench processes, one with the CPU
// libraries' vector ISA capped and one thread (as another, older CPU would run it), one without.
// Each run records the kernels its libraries dispatched to; the caps change them and the float
// arithmetic, but the images agree within the cross-layout contract (docs/experiments.md, "What is
// reproducible"). CI also runs every `numeric` test under the same caps (scripts/test.sh --capped).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "harness/hdf5.h"
#include "harness/results_store.h"
#include "support/agreement.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {
// env(1) arguments that apply scripts/cpu-caps/lowest.env (as scripts/test.sh --capped does), and
// those that remove the same variables.
struct CapArgs {
  std::string capped, uncapped;
};
CapArgs cap_args(const std::string& file) {
  std::ifstream in(file);
  CapArgs a;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line.find('=') == std::string::npos) continue;
    a.capped += " " + dc::test::shell_quote(line);
    a.uncapped += " -u " + line.substr(0, line.find('='));
  }
  return a;
}

struct Child {
  dc::test::CliRun cli;
  std::string cpu_kernels, thread_settings;
  torch::Tensor images, similarity;  // of the first run (seed 5)
  torch::Tensor other_seed_images;   // of the second run (seed 6)
};

// Runs `yaml` in a child process under `env_args` (arguments of env(1)) and reads its two runs back.
Child run_under(const std::string& env_args, const std::string& yaml, const std::string& dir) {
  const std::string h5 = dir + "/r.h5";
  Child c;
  c.cli = dc::test::run_cli("run " + dc::test::shell_quote(yaml) + " --results " + dc::test::shell_quote(h5), env_args);
  if (c.cli.code != 0) return c;
  auto runs = dc::harness::read_results(h5);
  if (runs.size() != 2) return c;
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  auto f = dc::h5::open_file(h5);
  auto g = dc::h5::open_group(f.id(), "runs/" + runs[0].run_id);
  c.cpu_kernels = dc::h5::get_attr_string(g.id(), "cpu_kernels");
  c.thread_settings = dc::h5::get_attr_string(g.id(), "thread_settings");
  c.images = dc::h5::read_tensor(g.id(), "images");
  c.similarity = dc::h5::read_tensor(g.id(), "similarity/up.0.block.2");
  c.other_seed_images = dc::h5::read_tensor(f.id(), "runs/" + runs[1].run_id + "/images");
  return c;
}

// "ATen=AVX2, oneDNN=avx512_core_bf16, OpenBLAS=Cooperlake" -> the value of `lib`.
std::string kernel_of(const std::string& kernels, const std::string& lib) {
  const auto p = kernels.find(lib + "=");
  if (p == std::string::npos) return "";
  const auto v = p + lib.size() + 1;
  return kernels.substr(v, kernels.find(',', v) - v);
}
}  // namespace

TEST(Portability, CappedKernelsChangeTheArithmeticNotTheImages) {
  const std::string dir = dc::test::temp_dir();
  const std::string w = fs::absolute("weights/fmnist/ddpm_ema.safetensors").string();
  ASSERT_TRUE(fs::exists(w)) << w << " (the trained model shipped in the repository) is missing";
  const std::string yaml = dir + "/p.yaml";
  std::ofstream(yaml) << "experiment: portability\nbaseline: false\nbase:\n"
                      << "  model: {family: ddpm, preset: fmnist, weights: " << w << "}\n"
                      << "  sampler: {name: ddim, steps: 10, spacing: uniform}\n"
                      << "  cache: {enabled: true, k: 1, interval: 2}\n"
                      << "  samples: {n: 8, batch: 8, seed: 5, save_images: true, grid: 0}\n"
                      << "  similarity: {enabled: true, taps: [up.0.block.2], samples: 2}\n"
                      << "runs:\n  - {}\n  - {samples.seed: 6}\n";
  const CapArgs caps = cap_args("scripts/cpu-caps/lowest.env");
  ASSERT_NE(caps.capped.find("ATEN_CPU_CAPABILITY="), std::string::npos) << "scripts/cpu-caps/lowest.env (run from the source tree)";
  fs::create_directories(dir + "/capped");
  fs::create_directories(dir + "/uncapped");
  const Child capped = run_under(caps.capped, yaml, dir + "/capped");
  const Child plain = run_under(caps.uncapped, yaml, dir + "/uncapped");
  ASSERT_EQ(capped.cli.code, 0) << capped.cli.err;
  ASSERT_EQ(plain.cli.code, 0) << plain.cli.err;
  ASSERT_TRUE(capped.images.defined() && plain.images.defined()) << capped.cli.out << plain.cli.out;
  RecordProperty("capped_kernels", capped.cpu_kernels);
  RecordProperty("uncapped_kernels", plain.cpu_kernels);
  std::cout << "[ kernels  ] capped:   " << capped.cpu_kernels << "; " << capped.thread_settings << "\n"
            << "[ kernels  ] uncapped: " << plain.cpu_kernels << "; " << plain.thread_settings << "\n";

  // 1. The caps reached the libraries (each reports its own dispatch) and the thread count.
  EXPECT_NE(capped.thread_settings.find("torch intra-op threads=1,"), std::string::npos) << capped.thread_settings;
  for (const auto& [lib, want] : std::vector<std::pair<std::string, std::string>>{
           {"ATen", "NO AVX"}, {"oneDNN", "sse41"}, {"OpenBLAS", "Prescott"}}) {
    const std::string got = kernel_of(capped.cpu_kernels, lib), free = kernel_of(plain.cpu_kernels, lib);
    if (free == "n/a" || free.empty()) continue;  // this LibTorch does not expose the library (e.g. a static oneDNN)
    EXPECT_EQ(got, want) << lib << " under the caps: " << capped.cpu_kernels;
    // Where the library's own detection already picked the capped level (Debian 12's OpenBLAS takes
    // some VMs' AVX-512 Xeons for a Prescott), the caps cannot change it.
    if (__builtin_cpu_supports("avx2") && free != want) {
      EXPECT_NE(got, free) << lib << ": the caps did not change its kernels";
    }
  }
  // 2. They changed the float arithmetic: the similarity maps (float64 cosines of float32
  // features) differ in the last bits, within 1e-5.
  ASSERT_EQ(capped.similarity.sizes(), plain.similarity.sizes());
  const double sim_diff = dc::test::max_abs_diff(capped.similarity, plain.similarity);
  RecordProperty("similarity_max_abs_diff", fmt::format("{:.3g}", sim_diff));
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_GT(sim_diff, 0.0) << "the capped kernels computed bit-identical features";
  }
  EXPECT_LT(sim_diff, 1e-5);
  // 3. The images agree within the contract.
  const auto u8 = dc::metrics::compare_images(capped.images, plain.images);
  EXPECT_TRUE(u8.within_contract()) << u8.describe();
  RecordProperty("uint8", u8.describe());
  // Negative control under the same tolerance: another seed.
  EXPECT_TRUE(dc::test::images_differ(capped.images, capped.other_seed_images)) << "seed 6 vs seed 5";
  std::cout << "[ measured ] capped vs uncapped: uint8 " << u8.describe() << "; similarity max |diff| " << sim_diff << "\n";
}
