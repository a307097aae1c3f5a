#include "metrics/accumulators.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

namespace {

torch::Tensor words_tensor(const ExactSum& s) {
  const std::vector<int64_t> w = s.words();
  return torch::tensor(w, torch::kInt64).view({static_cast<int64_t>(s.size()), 2});
}

const torch::Tensor& need(const MetricState& s, const std::string& key, const std::string& what) {
  auto it = s.find(key);
  if (it == s.end() || !it->second.defined()) throw Error(fmt::format("{}: metric state has no '{}'", what, key));
  if (it->second.scalar_type() != torch::kInt64) throw Error(fmt::format("{}: metric state '{}' is not int64", what, key));
  return it->second;
}

ExactSum exact_from(const MetricState& s, const std::string& key, const std::string& what) {
  const torch::Tensor t = need(s, key, what).contiguous();
  if (t.dim() != 2 || t.size(1) != 2) throw Error(fmt::format("{}: metric state '{}' must be [n, 2], is {}", what, key, c10::str(t.sizes())));
  return ExactSum::from_words(std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()), what + " " + key);
}

int64_t scalar_from(const MetricState& s, const std::string& key, const std::string& what) {
  const torch::Tensor& t = need(s, key, what);
  if (t.numel() != 1) throw Error(fmt::format("{}: metric state '{}' must hold one value", what, key));
  const int64_t v = t.item<int64_t>();
  if (v < 0) throw Error(fmt::format("{}: metric state '{}' is negative ({})", what, key, v));
  return v;
}

}  // namespace

MetricState to_state(const FeatureStats& s) {
  return {{"count", torch::tensor({s.count()}, torch::kInt64)}, {"sum", words_tensor(s.exact_sum())}, {"outer", words_tensor(s.exact_outer())}};
}

FeatureStats feature_stats_from_state(const MetricState& s, const std::string& what) {
  return FeatureStats::from_state(scalar_from(s, "count", what), exact_from(s, "sum", what), exact_from(s, "outer", what), what);
}

MetricState to_state(const FmnistEval& e) {
  MetricState s = to_state(e.stats);
  s["n"] = torch::tensor({e.n}, torch::kInt64);
  s["confident"] = torch::tensor({e.confident}, torch::kInt64);
  s["classes"] = torch::tensor(std::vector<int64_t>(e.classes.begin(), e.classes.end()), torch::kInt64);
  return s;
}

FmnistEval fmnist_eval_from_state(const MetricState& s, const std::string& what) {
  FmnistEval e;
  e.stats = feature_stats_from_state(s, what);
  e.n = scalar_from(s, "n", what);
  e.confident = scalar_from(s, "confident", what);
  const torch::Tensor c = need(s, "classes", what);
  if (c.numel() != 10) throw Error(fmt::format("{}: metric state 'classes' must hold 10 counts", what));
  for (int i = 0; i < 10; ++i) e.classes[i] = c[i].item<int64_t>();
  if (e.stats.count() != e.n || e.confident > e.n)
    throw Error(fmt::format("{}: inconsistent FID-FMNIST state (n {}, features {}, confident {})", what, e.n, e.stats.count(), e.confident));
  return e;
}

void merge_into(FmnistEval& into, const FmnistEval& o) {
  into.stats.merge(o.stats);
  into.n += o.n;
  into.confident += o.confident;
  for (int i = 0; i < 10; ++i) into.classes[i] += o.classes[i];
}

InceptionScoreAccumulator::InceptionScoreAccumulator(int splits, int64_t total, int64_t classes)
    : splits_(splits), total_(total), classes_(classes), count_(splits, 0), plogp_(splits), p_(splits * classes) {
  if (splits < 1) throw Error(fmt::format("Inception Score: splits must be at least 1, got {}", splits));
  if (total < splits) throw Error(fmt::format("Inception Score: {} samples cannot make {} splits", total, splits));
  if (classes < 1) throw Error("Inception Score: no classes");
}

void InceptionScoreAccumulator::add(const torch::Tensor& logits, int64_t first) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == classes_, "Inception Score: need [B, ", classes_, "] logits, got ", logits.sizes());
  const int64_t b = logits.size(0);
  if (first < 0 || first + b > total_)
    throw Error(fmt::format("Inception Score: samples [{}, {}) lie outside the run's {}", first, first + b, total_));
  const torch::Tensor x = logits.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor p = torch::softmax(x, 1).contiguous();
  const torch::Tensor plogp = (p * torch::log_softmax(x, 1)).sum(1).contiguous();  // [B]
  for (int s = 0; s < splits_; ++s) {  // the rows of this batch in split s
    const int64_t a = std::max(first, s * total_ / splits_), e = std::min(first + b, (s + 1) * total_ / splits_);
    if (a >= e) continue;
    const torch::Tensor rows = p.slice(0, a - first, e - first).sum(0).contiguous();
    const std::vector<double> part(rows.data_ptr<double>(), rows.data_ptr<double>() + classes_);
    for (int64_t c = 0; c < classes_; ++c) p_.add(static_cast<std::size_t>(s * classes_ + c), part[c], "a softmax sum");
    plogp_.add(static_cast<std::size_t>(s), plogp.slice(0, a - first, e - first).sum().item<double>(), "a p log p sum");
    count_[s] += e - a;
  }
}

void InceptionScoreAccumulator::merge(const InceptionScoreAccumulator& o) {
  if (o.splits_ != splits_ || o.total_ != total_ || o.classes_ != classes_)
    throw Error(fmt::format("Inception Score: cannot merge a state of {} splits over {} samples and {} classes into {}, {}, {}",
                            o.splits_, o.total_, o.classes_, splits_, total_, classes_));
  for (int s = 0; s < splits_; ++s) count_[s] += o.count_[s];
  plogp_.merge(o.plogp_);
  p_.merge(o.p_);
}

MetricState InceptionScoreAccumulator::state() const {
  return {{"splits", torch::tensor({static_cast<int64_t>(splits_)}, torch::kInt64)},
          {"total", torch::tensor({total_}, torch::kInt64)},
          {"count", torch::tensor(count_, torch::kInt64)},
          {"plogp", words_tensor(plogp_)},
          {"p", words_tensor(p_)}};
}

InceptionScoreAccumulator InceptionScoreAccumulator::from_state(const MetricState& s, const std::string& what) {
  const int64_t splits = scalar_from(s, "splits", what), total = scalar_from(s, "total", what);
  ExactSum plogp = exact_from(s, "plogp", what), p = exact_from(s, "p", what);
  if (splits < 1 || splits > 1'000'000 || static_cast<int64_t>(plogp.size()) != splits || p.size() % plogp.size())
    throw Error(fmt::format("{}: inconsistent Inception Score state ({} splits, {} p log p sums, {} softmax sums)", what, splits,
                            plogp.size(), p.size()));
  InceptionScoreAccumulator a(static_cast<int>(splits), total, static_cast<int64_t>(p.size()) / splits);
  const torch::Tensor c = need(s, "count", what);
  if (c.numel() != splits) throw Error(fmt::format("{}: Inception Score state has {} counts for {} splits", what, c.numel(), splits));
  for (int64_t i = 0; i < splits; ++i) a.count_[i] = c[i].item<int64_t>();
  a.plogp_ = std::move(plogp);
  a.p_ = std::move(p);
  return a;
}

InceptionScore InceptionScoreAccumulator::result() const {
  std::vector<double> scores;
  for (int s = 0; s < splits_; ++s) {
    const int64_t want = (s + 1) * total_ / splits_ - s * total_ / splits_;
    if (count_[s] != want)
      throw Error(fmt::format("Inception Score: split {} holds {} of its {} samples (a partial run has no score)", s, count_[s], want));
    const double n = static_cast<double>(count_[s]);
    double cross = 0.0;  // sum_y P_y log(P_y / n), with 0 log 0 = 0
    for (int64_t c = 0; c < classes_; ++c) {
      const double py = p_.value(static_cast<std::size_t>(s * classes_ + c));
      if (py > 0) cross += py * std::log(py / n);
    }
    scores.push_back(std::exp((plogp_.value(static_cast<std::size_t>(s)) - cross) / n));
  }
  return summarize_splits(scores, total_);
}

void ClipScoreAccumulator::add(const torch::Tensor& image_features, const torch::Tensor& text_features) {
  add_scores(clip_score_pairs(image_features.to(torch::kFloat64), text_features.to(torch::kFloat64)));
}

void ClipScoreAccumulator::add_scores(const torch::Tensor& per_pair) {
  const torch::Tensor s = per_pair.detach().to(torch::kCPU, torch::kFloat64).contiguous().flatten();
  if (!torch::isfinite(s).all().item<bool>()) throw Error("CLIP score: a per-pair score is not finite");
  const double total = s.sum().item<double>();  // the batch's sum in double, then added exactly
  sum_.add(&total, 1, "a CLIP score sum");
  count_ += s.numel();
}

void ClipScoreAccumulator::merge(const ClipScoreAccumulator& o) {
  sum_.merge(o.sum_);
  count_ += o.count_;
}

double ClipScoreAccumulator::mean() const {
  if (count_ == 0) throw Error("CLIP score: no (image, prompt) pairs were scored");
  return sum_.value(0) / static_cast<double>(count_);
}

MetricState ClipScoreAccumulator::state() const {
  return {{"count", torch::tensor({count_}, torch::kInt64)}, {"sum", words_tensor(sum_)}};
}

ClipScoreAccumulator ClipScoreAccumulator::from_state(const MetricState& s, const std::string& what) {
  ClipScoreAccumulator a;
  a.count_ = scalar_from(s, "count", what);
  a.sum_ = exact_from(s, "sum", what);
  if (a.sum_.size() != 1) throw Error(fmt::format("{}: CLIP score state 'sum' must hold one value, holds {}", what, a.sum_.size()));
  return a;
}

void SampleFeatures::add(const torch::Tensor& features, int64_t first) {
  if (features.dim() != 2 || features.size(1) != dims_)
    throw Error(fmt::format("per-sample features of samples from {} have shape {}, expected [B, {}]", first, c10::str(features.sizes()), dims_));
  if (first < 0) throw Error(fmt::format("per-sample features: negative first sample index {}", first));
  features_.push_back(features.detach().to(torch::kCPU, dtype_).contiguous());
  index_.push_back(torch::arange(first, first + features.size(0), torch::kInt64));
}

void SampleFeatures::settle() const {
  if (features_.empty() || (features_.size() == 1 && sorted_)) return;
  sorted_ = true;
  const torch::Tensor idx = torch::cat(index_);
  const torch::Tensor order = idx.argsort();
  features_ = {torch::cat(features_).index_select(0, order).contiguous()};
  index_ = {idx.index_select(0, order).contiguous()};
}

void SampleFeatures::merge(const SampleFeatures& o, const std::string& what) {
  if (o.dims_ != dims_ || (o.count() > 0 && count() > 0 && o.dtype_ != dtype_))
    throw Error(fmt::format("{}: per-sample features of {} ({}) and {} ({}) dimensions do not merge", what, dims_, c10::toString(dtype_), o.dims_,
                            c10::toString(o.dtype_)));
  if (count() == 0) dtype_ = o.dtype_;
  for (std::size_t i = 0; i < o.features_.size(); ++i) {
    features_.push_back(o.features_[i]);
    index_.push_back(o.index_[i]);
  }
  settle();
  if (!index_.empty() && index_[0].numel() > 1) {
    const torch::Tensor i = index_[0];
    const torch::Tensor same = i.slice(0, 1).eq(i.slice(0, 0, -1));
    if (same.any().item<bool>())
      throw Error(fmt::format("{}: per-sample features of sample {} are held twice (overlapping slices)",
                              what, i.slice(0, 1).masked_select(same)[0].item<int64_t>()));
  }
}

int64_t SampleFeatures::count() const {
  int64_t n = 0;
  for (const auto& t : index_) n += t.numel();
  return n;
}

torch::Tensor SampleFeatures::features() const {
  settle();
  if (features_.empty()) return torch::empty({0, dims_}, dtype_ == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  return dtype_ == torch::kFloat64 ? features_[0] : features_[0].to(torch::kFloat32);
}

torch::Tensor SampleFeatures::indices() const {
  settle();
  return index_.empty() ? torch::empty({0}, torch::kInt64) : index_[0];
}

MetricState SampleFeatures::state() const {
  settle();
  return {{"features", features_.empty() ? torch::empty({0, dims_}, dtype_) : features_[0]}, {"index", indices()}};
}

SampleFeatures SampleFeatures::from_state(const MetricState& s, const std::string& what) {
  const torch::Tensor idx = need(s, "index", what);
  auto it = s.find("features");
  if (it == s.end() || !it->second.defined()) throw Error(fmt::format("{}: metric state has no 'features'", what));
  const torch::Tensor& f = it->second;
  if ((f.scalar_type() != torch::kFloat16 && f.scalar_type() != torch::kFloat32 && f.scalar_type() != torch::kFloat64) || f.dim() != 2 ||
      idx.dim() != 1 || f.size(0) != idx.size(0))
    throw Error(fmt::format("{}: per-sample features state must be features [n, D] float16, float32 or float64 and index [n] int64, is {} {} and {}", what,
                            c10::toString(f.scalar_type()), c10::str(f.sizes()), c10::str(idx.sizes())));
  if (idx.numel() > 0 && idx.min().item<int64_t>() < 0) throw Error(fmt::format("{}: per-sample features state holds a negative sample index", what));
  SampleFeatures out(f.size(1), f.scalar_type());
  if (f.size(0) > 0) {
    out.features_ = {f.contiguous()};
    out.index_ = {idx.contiguous()};
    out.sorted_ = false;
    out.merge(SampleFeatures(f.size(1), f.scalar_type()), what);  // sorts and refuses duplicates
  }
  return out;
}

std::string features_state(const std::string& metric) { return metric + "_features"; }

bool is_features_state(const std::string& name) {
  static const std::string suffix = "_features";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

MetricState merge_states(const std::string& name, const MetricState& a, const MetricState& b, const std::string& what) {
  if (name == "fid" || name == "sfid") {
    FeatureStats s = feature_stats_from_state(a, what);
    s.merge(feature_stats_from_state(b, what));
    return to_state(s);
  }
  if (name == "fid_fmnist") {
    FmnistEval e = fmnist_eval_from_state(a, what);
    merge_into(e, fmnist_eval_from_state(b, what));
    return to_state(e);
  }
  if (name == "inception_score") {
    auto s = InceptionScoreAccumulator::from_state(a, what);
    s.merge(InceptionScoreAccumulator::from_state(b, what));
    return s.state();
  }
  if (name == "clip_score") {
    auto s = ClipScoreAccumulator::from_state(a, what);
    s.merge(ClipScoreAccumulator::from_state(b, what));
    return s.state();
  }
  if (name == "precision_recall" || name == "fidelity" || is_features_state(name)) {
    auto s = SampleFeatures::from_state(a, what);
    s.merge(SampleFeatures::from_state(b, what), what);
    return s.state();
  }
  throw Error(fmt::format("{}: unknown metric state '{}' (known: fid, sfid, fid_fmnist, inception_score, clip_score, precision_recall, fidelity, <metric>_features)", what, name));
}

}  // namespace dc::metrics
