// Fixture infrastructure. The root is $DEEPCACHE_FIXTURES (default tests/fixtures, relative to
// the source tree where ctest runs); the large files (Inception weights) are found through
// $DEEPCACHE_FIXTURES_LARGE. Suites scan for every case and read everything from its json, so
// a hidden case set in the same layout runs with no code change.
#pragma once
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "metrics/tensor_compare.h"

namespace dc::test {

std::string fixtures_root();
// $DEEPCACHE_FIXTURES_LARGE when set (whether or not it exists; callers report absence).
std::optional<std::string> large_fixtures_root();

// Regular files under `root` whose name ends with `suffix`, recursively, sorted.
std::vector<std::string> find_files(const std::string& root, const std::string& suffix);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32", "int64", ...
};

struct Case {
  std::string family;     // folder under the root, e.g. "ddpm"
  std::string name;       // "deepcache_branch0"
  std::string json_path;
  std::string dir;
  nlohmann::json json;

  std::string id() const { return family + "/" + name; }
  // `io_file` from the json, else <case>.io.safetensors next to it.
  std::string io_path() const;
  // `weights_file` resolved; "large/..." goes through $DEEPCACHE_FIXTURES_LARGE. nullopt: none named.
  std::optional<std::string> weights_path() const;
  // One tensor of the io file (as stored; the file is opened once per call).
  torch::Tensor io_tensor(const std::string& tensor) const;
  // Tensor specs from the json's "tensors" or "io" object (whichever it has).
  std::vector<TensorSpec> io_specs() const;
  // Specs from a "weights" object, when the json lists the weights' shapes.
  std::vector<TensorSpec> weight_specs() const;
  // The tolerance for one output: a per-tensor {abs, rel} object when the json has one, else the
  // case's abs/rel; `exact: true` or an integer dtype means exact comparison.
  metrics::Tolerance tolerance_for(const std::string& tensor, const torch::Tensor& expected) const;
};

inline void PrintTo(const Case& c, std::ostream* os) { *os << c.id(); }

// A per-tensor tolerance written as a string in a case json ("atol 1e-6 ...", "rtol 1e-4",
// "exact ...", "exact except +-1 ..."). Throws std::runtime_error naming `where` for a rule it
// does not understand.
metrics::Tolerance parse_tolerance_rule(const std::string& rule, const std::string& where);

// JSON as Python's json module writes it: bare NaN, Infinity, -Infinity are read as the strings
// "NaN", "Infinity", "-Infinity". Discarded (is_discarded()) when it is not JSON even so.
nlohmann::json parse_python_json(const std::string& text);
// Case files (json mentioning "case") that did not parse: FixtureConsumption fails on each.
std::vector<std::string>& unreadable_case_files();

// Every case json (an object with a "case" key; manifests and maps are not cases) under the
// root, optionally only in one family folder.
std::vector<Case> find_cases(const std::string& family = "");

// gtest assertion: compares with the case's tolerance and explains a failure (max |diff|, NMSE,
// first mismatching indices).
::testing::AssertionResult matches_reference(const Case& c, const std::string& tensor,
                                             const torch::Tensor& actual, const torch::Tensor& expected);

// A fresh empty directory for one test (removed by the OS tmp cleaner; names are unique).
// ---- which parity suite consumes a case --------------------------------------------------------
// Every parity suite registers its case selection once, at namespace scope:
//   const bool kRegistered = dc::test::register_fixture_suite("LdmUNetCase", is_ldm_unet_case);
// and selects its cases with cases_where(family, filter). The FixtureConsumption test fails for
// a case that no registered suite selects, unless its family is listed in
// families_without_suite() (printed by that test).
using CaseFilter = bool (*)(const Case&);
bool register_fixture_suite(const char* suite, CaseFilter filter);
std::vector<std::string> suites_consuming(const Case& c);
std::vector<Case> cases_where(const std::string& family, CaseFilter filter);
// Families whose cases no suite reads yet (one place): none.
const std::vector<std::string>& families_without_suite();

std::string temp_dir();

// A file's whole content ("" when it cannot be read).
std::string read_text(const std::string& path);

// The first of python3 (PATH) and /usr/bin/python3 that imports every module of `modules` (e.g.
// "h5py, matplotlib"), or "" when neither does (the test then skips, naming the Debian packages).
std::string python_with(const std::string& modules);

// The message of the dc::Error that `f` throws, or "" when it throws none (other exceptions pass).
std::string error_text(const std::function<void()>& f);

// Path of a program built next to the test binary (e.g. "deepcache-bench").
std::string sibling_program(const std::string& name);

}  // namespace dc::test
