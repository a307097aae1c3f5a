// The HDF5 layer's defences (harness/hdf5_core.h): the superblock pre-check, the 1.8 file format
// with checksummed metadata, declared sizes checked before allocating, and damaged files giving
// one dc::Error (never a crash) however they are damaged.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "harness/hdf5.h"
#include "harness/results_codec.h"
#include "support/damage.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
namespace h5 = dc::h5;

namespace {

using dc::test::Bytes;
using dc::test::read_bytes;
using dc::test::write_bytes;
Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }

// A small results file in the layout `run` writes: schema, a run's attributes, scalars, steps and
// a similarity map.
void write_results(const std::string& path) {
  auto f = h5::create_file(path);
  h5::set_attr(f.id(), "schema", std::string("deepcache-bench results v1 (results/README.md)"));
  auto runs = h5::create_group(f.id(), "runs");
  auto g = h5::create_group(runs.id(), "0123456789abcdef");
  h5::set_attr(g.id(), "status", std::string("complete"));
  h5::set_attr(g.id(), "order", int64_t{3});
  h5::set_attr(g.id(), "shard_count", int64_t{1});
  auto m = h5::create_group(g.id(), "metrics");
  h5::write_scalar(m.id(), "seconds", 1.5);
  h5::write_tensor(g.id(), "full_steps", torch::tensor({0, 2, 4}, torch::kInt32));
  h5::write_tensor(g.id(), "timesteps", torch::tensor({999, 500, 1}, torch::kInt64));
  auto sim = h5::create_group(g.id(), "similarity");
  h5::write_tensor(sim.id(), "up.0", torch::eye(3, torch::kFloat64));
}

}  // namespace

TEST(Hdf5, NewFilesUseTheChecksummedFormatAndReadBack) {
  const std::string p = dc::test::temp_dir() + "/r.h5";
  write_results(p);
  EXPECT_GE(h5::superblock_version(p), 2) << "create_file writes the HDF5 1.8 format (checksummed metadata)";
  const auto runs = dc::harness::read_results_file(p);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "complete");
  EXPECT_EQ(runs[0].order, 3);
  EXPECT_EQ(runs[0].full_calls, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(runs[0].model_calls, 3);
  EXPECT_EQ(runs[0].scalars.at("metrics/seconds"), 1.5);
  EXPECT_TRUE(torch::equal(h5::to_tensor(runs[0].arrays.similarity.at("up.0")), torch::eye(3, torch::kFloat64)));
}

TEST(Hdf5, PreCheckRefusesWhatLibhdf5ShouldNotSee) {
  const std::string dir = dc::test::temp_dir();
  write_results(dir + "/good.h5");
  const std::string good = text_of(read_bytes(dir + "/good.h5"));
  struct Case {
    std::string name, bytes, needle;
  };
  std::string newer = good;
  newer[8] = 4;
  std::string sizes = good;
  sizes[9] = 3;
  const std::vector<Case> cases = {
      {"empty", "", "not an HDF5 file"},
      {"text", "hello, not HDF5\n", "not an HDF5 file"},
      {"signature only", good.substr(0, 9), "cut short"},
      {"truncated", good.substr(0, good.size() / 2), "truncated HDF5 file"},
      {"newer superblock", newer, "superblock version 4"},
      {"odd address size", sizes, "addresses of 3 bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = dir + "/bad.h5";
    write_bytes(p, bytes_of(c.bytes));
    const std::string e = dc::test::error_text([&] { h5::open_file(p); });
    EXPECT_NE(e.find(p), std::string::npos) << e;
    EXPECT_NE(e.find(c.needle), std::string::npos) << e;
  }
  // After a 512-byte user block, the superblock is found there.
  write_bytes(dir + "/ub.h5", bytes_of(std::string(512, 'u') + good));
  EXPECT_EQ(dc::test::error_text([&] { h5::check_file(dir + "/ub.h5"); }), "");
}

TEST(Hdf5, DeclaredSizesAreCheckedBeforeAllocating) {
  const std::string p = dc::test::temp_dir() + "/r.h5";
  {
    auto f = h5::create_file(p);
    // A chunked dataset of 2^40 doubles whose chunks were never written: it stores nothing.
    const hsize_t dims[1] = {hsize_t{1} << 40}, chunk[1] = {1024};
    h5::Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
    h5::Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(plist.id(), 1, chunk);
    h5::Handle ds(H5Dcreate2(f.id(), "huge", H5T_NATIVE_DOUBLE, space.id(), H5P_DEFAULT, plist.id(), H5P_DEFAULT), H5Dclose);
    ASSERT_TRUE(ds.valid());
    h5::write_tensor(f.id(), "pair", torch::zeros({2}, torch::kFloat64));
  }
  auto f = h5::open_file(p);
  const std::string e = dc::test::error_text([&] { h5::read_array(f.id(), "huge"); });
  EXPECT_NE(e.find("declares 8796093022208 bytes of data, the file stores 0 bytes"), std::string::npos) << e;
  EXPECT_NE(dc::test::error_text([&] { h5::read_scalar(f.id(), "pair"); }).find("holds 2 values where one number is expected"), std::string::npos);
}

// Every single-byte corruption of a results file: a result (the byte was raw data or padding) or one
// dc::Error, never a crash or another exception (under the sanitizers in CI's ASan pass).
TEST(Hdf5, EveryByteFlipIsAResultOrOneError) {
  const std::string dir = dc::test::temp_dir();
  write_results(dir + "/good.h5");
  const std::string good = text_of(read_bytes(dir + "/good.h5"));
  int errors = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string b = good;
    b[i] = static_cast<char>(b[i] ^ 0x5a);
    write_bytes(dir + "/flip.h5", bytes_of(b));
    try {
      (void)dc::harness::read_results_file(dir + "/flip.h5");
    } catch (const dc::Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i << ": not a dc::Error: " << e.what();
    }
  }
  // Metadata is most of a small file, and its checksums catch a flipped byte.
  EXPECT_GT(errors, static_cast<int>(good.size()) / 2) << errors << " errors in " << good.size() << " flips";
}
