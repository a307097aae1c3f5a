#include "support/fixtures.h"

#include "common/error.h"

#include <cstring>
#include <iterator>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "models/weights/tensor_io.h"

namespace fs = std::filesystem;

namespace dc::test {

std::string fixtures_root() {
  const char* env = std::getenv("DEEPCACHE_FIXTURES");
  return env && *env ? env : "tests/fixtures";
}

std::optional<std::string> large_fixtures_root() {
  const char* env = std::getenv("DEEPCACHE_FIXTURES_LARGE");
  if (env && *env) return std::string(env);
  return std::nullopt;
}

std::vector<std::string> find_files(const std::string& root, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string p = it->path().string();
    if (it->is_regular_file(ec) && p.size() >= suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Case::io_path() const {
  if (json.contains("io_file") && json["io_file"].is_string()) return (fs::path(dir) / json["io_file"].get<std::string>()).string();
  return (fs::path(dir) / (name + ".io.safetensors")).string();
}

torch::Tensor Case::io_tensor(const std::string& tensor) const {
  return st::load_tensor(st::SafetensorsFile::open(io_path()), tensor);
}

std::optional<std::string> Case::weights_path() const {
  if (!json.contains("weights_file") || !json["weights_file"].is_string()) return std::nullopt;
  const std::string w = json["weights_file"].get<std::string>();
  const std::string large = "large/";
  if (w.compare(0, large.size(), large) == 0) {
    if (auto root = large_fixtures_root()) return (fs::path(*root) / w.substr(large.size())).string();
  }
  return (fs::path(dir) / w).string();
}

namespace {
std::vector<TensorSpec> specs_from(const nlohmann::json& obj) {
  std::vector<TensorSpec> out;
  if (!obj.is_object()) return out;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const auto& v = it.value();
    if (!v.is_object() || !v.contains("shape") || !v.contains("dtype")) continue;
    out.push_back({it.key(), v["shape"].get<std::vector<int64_t>>(), v["dtype"].get<std::string>()});
  }
  return out;
}
}  // namespace

std::vector<TensorSpec> Case::io_specs() const {
  if (json.contains("tensors")) return specs_from(json["tensors"]);
  if (json.contains("io")) return specs_from(json["io"]);
  return {};
}

std::vector<TensorSpec> Case::weight_specs() const {
  return json.contains("weights") ? specs_from(json["weights"]) : std::vector<TensorSpec>{};
}

metrics::Tolerance parse_tolerance_rule(const std::string& rule, const std::string& where) {
  // The rules the reference tools write: "atol 1e-6 ...", "rtol 1e-4", "exact ...", and "+-N" /
  // "±N" for integer values that may differ by N at rounding edges ("exact except +-1 ...",
  // "exact if ... (else +-1)"). Anything else is an error: a rule must not fall back silently.
  metrics::Tolerance t;
  bool understood = false;
  auto number_after = [&](const std::string& word) -> std::optional<double> {
    const auto at = rule.find(word);
    if (at == std::string::npos) return std::nullopt;
    try {
      return std::stod(rule.substr(at + word.size()));
    } catch (const std::exception&) {
      throw std::runtime_error(where + ": tolerance rule '" + rule + "': no number after '" + word + "'");
    }
  };
  if (auto a = number_after("atol")) t.abs = *a, understood = true;
  if (auto r = number_after("rtol")) t.rel = *r, understood = true;
  std::optional<double> pm = number_after("+-");
  if (!pm) pm = number_after("\u00b1");
  if (pm) {
    t.abs = *pm;
    understood = true;
  } else if (rule.rfind("exact", 0) == 0) {
    t.exact = true;
    understood = true;
  }
  if (!understood) throw std::runtime_error(where + ": tolerance rule '" + rule + "' is not understood (atol X, rtol X, exact, +-N)");
  return t;
}

metrics::Tolerance Case::tolerance_for(const std::string& tensor, const torch::Tensor& expected) const {
  metrics::Tolerance t;
  const nlohmann::json tol = json.value("tolerance", nlohmann::json::object());
  // A rule names the tensor, or its last dotted part ("image_uint8" covers "traj.<run>.image_uint8").
  std::string key = tensor;
  if (!tol.contains(key) && tensor.find('.') != std::string::npos) key = tensor.substr(tensor.rfind('.') + 1);
  const bool own = key != "note" && tol.contains(key) && (tol[key].is_object() || tol[key].is_string());
  if (own && tol[key].is_string()) {
    t = parse_tolerance_rule(tol[key].get<std::string>(), id() + " tolerance." + key);
  } else if (own) {
    t.abs = tol[key].value("abs", 0.0);
    t.rel = tol[key].value("rel", 0.0);
    t.exact = tol[key].value("exact", false);
  } else {
    t.abs = tol.value("abs", 0.0);
    t.rel = tol.value("rel", 0.0);
    t.exact = tol.value("exact", false);
  }
  // Integer tensors (indices, flags, uint8 images) are exact unless their own rule allows +-N.
  if (expected.defined() && !expected.is_floating_point() && !own) t.exact = true;
  return t;
}

nlohmann::json parse_python_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  // Python's json writes NaN, Infinity and -Infinity bare (e.g. a scheduler config's
  // lambda_min_clipped); JSON has no such numbers: read them as the strings "NaN", ...
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') {
      in_string = true;
      out += ch;
      continue;
    }
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      const std::size_t n = std::strlen(token);
      if (text.compare(i, n, token) == 0) {
        out += '"' + std::string(token) + '"';
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += ch;
  }
  return nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
}

std::vector<std::string>& unreadable_case_files() {
  static std::vector<std::string> files;
  return files;
}

std::vector<Case> find_cases(const std::string& family) {
  std::vector<Case> out;
  const std::string root = fixtures_root();
  for (const std::string& p : find_files(root, ".json")) {
    if (p.size() >= 10 && (p.compare(p.size() - 10, 10, ".keys.json") == 0)) continue;
    if (p.size() >= 9 && (p.compare(p.size() - 9, 9, ".map.json") == 0)) continue;
    const fs::path path(p);
    const std::string fam = path.parent_path().filename().string();
    if (!family.empty() && fam != family) continue;
    std::ifstream in(p);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nlohmann::json j = parse_python_json(text);
    if (j.is_discarded() && text.find("\"case\"") != std::string::npos) {
      auto& bad = unreadable_case_files();  // FixtureConsumption fails on it
      if (std::find(bad.begin(), bad.end(), p) == bad.end()) bad.push_back(p);
      continue;
    }
    // A case names itself: {"case": "<name>", ...}. (A tokenizer vocab.json also has a key
    // "case", mapped to a token id.)
    if (!j.is_object() || !j.contains("case") || !j["case"].is_string()) continue;
    Case c;
    c.family = fam;
    c.name = path.stem().string();
    c.json_path = p;
    c.dir = path.parent_path().string();
    c.json = std::move(j);
    out.push_back(std::move(c));
  }
  return out;
}

::testing::AssertionResult matches_reference(const Case& c, const std::string& tensor,
                                             const torch::Tensor& actual, const torch::Tensor& expected) {
  const metrics::Tolerance tol = c.tolerance_for(tensor, expected);
  const metrics::CompareResult r = metrics::compare_tensors(actual, expected, tol);
  // $DC_PARITY_LOG: one line per comparison (case, tensor, worst |d|/allowed, max |d|) for the
  // parity margins reported in closing notes.
  if (const char* log = std::getenv("DC_PARITY_LOG"); log && *log) {
    std::ofstream out(log, std::ios::app);
    out << c.id() << " " << tensor << " " << r.worst_ratio << " " << r.max_abs_diff << "\n";
  }
  if (r.ok) return ::testing::AssertionSuccess() << r.describe(c.id() + ":" + tensor, tol);
  return ::testing::AssertionFailure() << r.describe(c.id() + ":" + tensor, tol);
}

std::string temp_dir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TMPDIR");
  fs::path p = fs::path(base && *base ? base : "/tmp") /
               fmt::format("dc_test_{}_{}", ::getpid(), counter.fetch_add(1));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string sibling_program(const std::string& name) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / name).string();
}

namespace {
std::vector<std::pair<std::string, CaseFilter>>& suite_registry() {
  static std::vector<std::pair<std::string, CaseFilter>> r;
  return r;
}
}  // namespace

bool register_fixture_suite(const char* suite, CaseFilter filter) {
  suite_registry().emplace_back(suite, filter);
  return true;
}

std::vector<std::string> suites_consuming(const Case& c) {
  std::vector<std::string> out;
  for (const auto& [name, keep] : suite_registry())
    if (keep(c)) out.push_back(name);
  return out;
}

std::vector<Case> cases_where(const std::string& family, CaseFilter filter) {
  std::vector<Case> out;
  for (auto& c : find_cases(family))
    if (filter(c)) out.push_back(c);
  return out;
}

const std::vector<std::string>& families_without_suite() {
  static const std::vector<std::string> f = {};  // every family has its parity suites
  return f;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string python_with(const std::string& modules) {
  for (const char* c : {"python3", "/usr/bin/python3"})
    if (std::system((std::string(c) + " -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0) return c;
  return "";
}

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const dc::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace dc::test
