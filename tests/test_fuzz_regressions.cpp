// Inputs that once crashed a fuzz target (tests/fuzz_regressions/<target>/): each goes through the
// parser its target calls and must give a result or one dc::Error, nothing else.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>

#include "common/error.h"
#include "common/png_core.h"
#include "common/prompts.h"
#include "harness/config.h"
#include "harness/data/idx_core.h"
#include "harness/results_codec.h"
#include "metrics/npy_core.h"
#include "models/clip_tokenizer.h"
#include "models/weights/safetensors.h"

namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// target name -> what fuzz/fuzz_<target>.cpp does with one input file
const std::map<std::string, std::function<void(const fs::path&)>>& handlers() {
  static const std::map<std::string, std::function<void(const fs::path&)>> h = {
      {"experiment", [](const fs::path& p) { (void)dc::harness::parse_experiment(read_all(p), p.string(), "experiments"); }},
      {"npz",
       [](const fs::path& p) {
         const std::string b = read_all(p);
         const auto* d = reinterpret_cast<const uint8_t*>(b.data());
         if (b.size() >= 6 && d[0] == 0x93 && d[1] == 'N') (void)dc::metrics::npy::parse_npy(d, b.size(), p.string());
         else (void)dc::metrics::npy::read_npz_memory(d, b.size(), p.string(), uint64_t{64} << 20);
       }},
      {"png",
       [](const fs::path& p) {
         const std::string b = read_all(p);
         (void)dc::image::decode_png_memory(reinterpret_cast<const uint8_t*>(b.data()), b.size(), p.string(), int64_t{1} << 22);
       }},
      {"idx", [](const fs::path& p) { (void)dc::data::read_idx_array(p.string()); }},
      {"hdf5", [](const fs::path& p) { (void)dc::harness::read_results_file(p.string()); }},
      // Inputs that crash libhdf5 1.10 itself (docs/reliability.md, "Third-party findings"): files
      // in the HDF5 1.6 format, which fuzz_hdf5 takes to the pre-check only. Checked here: they
      // pass the pre-check (the pre-check cannot see the damage) and are 1.6-format files.
      {"hdf5_libhdf5",
       [](const fs::path& p) {
         dc::h5::check_file(p.string());
         EXPECT_LT(dc::h5::superblock_version(p.string()), 2) << p;
       }},
      {"prompts", [](const fs::path& p) { (void)dc::read_prompt_file(p.string()); }},
      {"safetensors",
       [](const fs::path& p) {
         const auto f = dc::st::SafetensorsFile::open(p.string());
         for (const auto& t : f.tensors()) (void)f.data(t);
       }},
      {"tokenizer_encode",
       [](const fs::path& p) {
         const auto tok = dc::models::ClipTokenizer::from_dir("tests/fixtures/clip/tokenizer");
         (void)tok.tokenize(read_all(p), 77, dc::models::ClipTokenizer::Padding::EndToken);
       }},
  };
  return h;
}

}  // namespace

TEST(FuzzRegressions, EveryInputIsAnErrorOrAResult) {
  int n = 0;
  for (const auto& dir : fs::directory_iterator("tests/fuzz_regressions")) {
    if (!dir.is_directory()) continue;
    const std::string target = dir.path().filename().string();
    const auto it = handlers().find(target);
    ASSERT_NE(it, handlers().end()) << dir.path() << ": no handler for fuzz target '" << target << "' (add one here)";
    for (const auto& f : fs::directory_iterator(dir.path())) {
      SCOPED_TRACE(f.path().string());
      try {
        it->second(f.path());
      } catch (const dc::Error& e) {
        EXPECT_FALSE(std::string(e.what()).empty());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "not a dc::Error: " << e.what();
      }
      ++n;
    }
  }
  EXPECT_GE(n, 2) << "the regression inputs are missing (run from the repository root)";
}
