#include "harness/journal.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/io_ops.h"
#include "harness/hdf5.h"
#include "harness/results_codec.h"
#include "harness/results_store.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

constexpr const char* kPrefix = "batch-";
constexpr const char* kSuffix = ".h5";

std::string record_name(int64_t index) { return fmt::format("{}{:08d}{}", kPrefix, index, kSuffix); }

// The batch index of a record file name, or -1.
int64_t index_of(const std::string& name) {
  const std::string p = kPrefix, s = kSuffix;
  if (name.size() <= p.size() + s.size() || name.rfind(p, 0) != 0 || name.compare(name.size() - s.size(), s.size(), s) != 0) return -1;
  const std::string digits = name.substr(p.size(), name.size() - p.size() - s.size());
  if (digits.empty() || digits.size() > 12 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

torch::Tensor doubles(const std::vector<double>& v) {
  return torch::tensor(v, torch::kFloat64).reshape({static_cast<int64_t>(v.size())});
}

void write_group(hid_t parent, const std::string& name, const std::map<std::string, torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  auto g = h5::create_group(parent, name);
  // Names may hold '/' (quality inputs are `<metric>/<name>`): one level of subgroups.
  std::map<std::string, std::map<std::string, torch::Tensor>> nested;
  for (const auto& [k, t] : tensors) {
    const auto slash = k.find('/');
    if (slash == std::string::npos) h5::write_tensor(g.id(), k, t.contiguous().cpu());
    else nested[k.substr(0, slash)][k.substr(slash + 1)] = t;
  }
  for (const auto& [sub, ts] : nested) write_group(g.id(), sub, ts);
}

void read_group(hid_t parent, const std::string& name, const std::string& prefix, std::map<std::string, torch::Tensor>& out) {
  if (!h5::exists(parent, name)) return;
  auto g = h5::open_group(parent, name);
  for (const auto& c : h5::children(g.id())) {
    const hid_t o = H5Oopen(g.id(), c.c_str(), H5P_DEFAULT);
    const bool is_group = o >= 0 && H5Iget_type(o) == H5I_GROUP;
    if (o >= 0) H5Oclose(o);
    if (is_group)
      read_group(g.id(), c, prefix + c + "/", out);
    else
      out[prefix + c] = h5::read_tensor(g.id(), c);
  }
}

}  // namespace

std::string journal_folder(const std::string& results, const std::string& key) {
  return (fs::path(results + ".journal") / key).string();
}

RunJournal::RunJournal(std::string folder, std::string config, int64_t batch)
    : folder_(std::move(folder)), config_(std::move(config)), batch_(batch) {}

std::vector<BatchRecord> RunJournal::load(int64_t first_index, int* discarded) const {
  std::vector<BatchRecord> out;
  int dropped = 0;
  if (discarded) *discarded = 0;
  if (!fs::is_directory(folder_)) return out;
  // Under the results file's lock: every temporary record is a dead writer's.
  remove_temporaries(folder_, "tmp.");
  for (const auto& e : fs::directory_iterator(folder_)) {
    const std::string name = e.path().filename().string();
    if (index_of(name) < 0 && name.find(".tmp.") != std::string::npos) {
      std::error_code ec;
      fs::remove(e.path(), ec);
    }
  }
  std::vector<std::pair<int64_t, fs::path>> files;
  for (const auto& e : fs::directory_iterator(folder_)) {
    const int64_t i = index_of(e.path().filename().string());
    if (i >= 0) files.emplace_back(i, e.path());
  }
  std::sort(files.begin(), files.end());
  bool broken = false;
  for (const auto& [i, path] : files) {
    if (!broken) {
      try {
        if (i != first_index + static_cast<int64_t>(out.size())) throw Error("a gap");
        auto f = h5::open_file(path.string());
        if (h5::get_attr_string(f.id(), "config") != config_ || static_cast<int64_t>(h5::get_attr_double(f.id(), "batch")) != batch_)
          throw Error("another configuration");
        BatchRecord r;
        r.index = i;
        r.first = static_cast<int64_t>(h5::get_attr_double(f.id(), "first"));
        r.rows = static_cast<int64_t>(h5::get_attr_double(f.id(), "rows"));
        r.seconds = h5::get_attr_double(f.id(), "seconds");
        r.metric_seconds = h5::get_attr_double(f.id(), "metric_seconds");
        if (r.first != i * batch_ || r.rows < 1 || r.rows > batch_) throw Error("another batch grid");
        const torch::Tensor st = h5::read_tensor(f.id(), "step_time_ms").to(torch::kFloat64).contiguous();
        r.step_time_ms.assign(st.data_ptr<double>(), st.data_ptr<double>() + st.numel());
        const torch::Tensor fl = h5::read_tensor(f.id(), "is_full").to(torch::kInt64).contiguous();
        for (int64_t k = 0; k < fl.numel(); ++k) r.is_full.push_back(static_cast<int>(fl.data_ptr<int64_t>()[k]));
        r.computed = read_computed(f.id(), r.is_full.size());
        if (h5::exists(f.id(), "images")) r.images = h5::read_tensor(f.id(), "images");
        if (h5::exists(f.id(), "labels")) r.labels = h5::read_tensor(f.id(), "labels");
        read_group(f.id(), "quality", "", r.quality);
        read_group(f.id(), "similarity", "", r.similarity);
        out.push_back(std::move(r));
        continue;
      } catch (const std::exception&) {
        broken = true;  // this record and every later one are made again
      }
    }
    std::error_code ec;
    fs::remove(path, ec);
    ++dropped;
  }
  if (discarded) *discarded = dropped;
  return out;
}

void RunJournal::append(const BatchRecord& r) const {
  io::make_folders(folder_);
  const std::string path = (fs::path(folder_) / record_name(r.index)).string();
  // Made in memory and written whole with checked writes (common/atomic_file.h): a full disk
  // leaves the records before it as they were, and the run resumes from them.
  std::string image;
  {
    auto bytes = [](const torch::Tensor& t) { return t.defined() ? static_cast<std::size_t>(t.numel()) * t.element_size() : 0; };
    std::size_t hint = 64 * 1024 + bytes(r.images) + bytes(r.labels);
    for (const auto& [k, t] : r.quality) hint += bytes(t);
    for (const auto& [k, t] : r.similarity) hint += bytes(t);
    auto f = h5::create_memory_file(path, hint);
    h5::set_attr(f.id(), "config", config_);
    h5::set_attr(f.id(), "batch", batch_);
    h5::set_attr(f.id(), "first", r.first);
    h5::set_attr(f.id(), "rows", r.rows);
    h5::set_attr(f.id(), "seconds", r.seconds);
    h5::set_attr(f.id(), "metric_seconds", r.metric_seconds);
    h5::write_tensor(f.id(), "step_time_ms", doubles(r.step_time_ms));
    h5::write_tensor(f.id(), "is_full", torch::tensor(std::vector<int64_t>(r.is_full.begin(), r.is_full.end()), torch::kInt64).to(torch::kUInt8));
    write_computed(f.id(), r.computed);
    if (r.images.defined()) h5::write_tensor(f.id(), "images", r.images.contiguous().cpu());
    if (r.labels.defined()) h5::write_tensor(f.id(), "labels", r.labels.contiguous().cpu());
    write_group(f.id(), "quality", r.quality);
    write_group(f.id(), "similarity", r.similarity);
    image = h5::file_image(f.id(), path);
  }
  write_file_atomically(path, image);
}

void RunJournal::remove() const {
  std::error_code ec;
  fs::remove_all(folder_, ec);
  const fs::path parent = fs::path(folder_).parent_path();
  if (fs::is_directory(parent, ec) && fs::is_empty(parent, ec)) fs::remove(parent, ec);
}

}  // namespace dc::harness
