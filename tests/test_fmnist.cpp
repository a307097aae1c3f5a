// The Fashion-MNIST pieces: IDX reading (plain, gzip, damaged), the training YAML, one DDPM
// training step lowering the loss on a fixed batch, checkpoint resume equal to an uninterrupted
// run (DDPM and classifier), FID-FMNIST and its wiring into `run` with provenance.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "harness/data/idx.h"
#include "harness/hdf5.h"
#include "harness/train/train.h"
#include "metrics/fid_fmnist.h"
#include "metrics/npz.h"
#include "metrics/sha256.h"
#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int b = 3; b >= 0; --b) s += static_cast<char>((d >> (8 * b)) & 0xff);
  s.append(data.begin(), data.end());
  return s;
}

void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

// A small synthetic Fashion-MNIST folder: `n` train and `n` test images of class-dependent blobs.
std::string fake_fashion_mnist(int n) {
  const std::string dir = dc::test::temp_dir();
  for (const std::string split : {"train", "t10k"}) {
    std::vector<uint8_t> images(static_cast<size_t>(n) * 28 * 28), labels(n);
    for (int i = 0; i < n; ++i) {
      labels[i] = static_cast<uint8_t>(i % 10);
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x)
          images[(static_cast<size_t>(i) * 28 + y) * 28 + x] = static_cast<uint8_t>((std::abs(y - 14) + std::abs(x - 14) < 4 + labels[i]) ? 200 + (i % 50) : (x * y + i) % 23);
    }
    write_gz(dir + "/" + split + "-images-idx3-ubyte.gz", idx_bytes({static_cast<uint32_t>(n), 28, 28}, images));
    write_gz(dir + "/" + split + "-labels-idx1-ubyte.gz", idx_bytes({static_cast<uint32_t>(n)}, labels));
  }
  return dir;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const dc::Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "'" << n << "' not in: " << e.what();
  }
}

dc::train::TrainSpec small_spec(const std::string& kind, const std::string& data, const std::string& out) {
  return dc::train::parse_train_spec(fmt::format(R"(train:
  name: test_{0}
  kind: {0}
  data: {{dir: "{1}"}}
  steps: 4
  batch: 8
  lr: 1.0e-3
  warmup: 2
  ema: 0.9
  checkpoint_every: 2
  seed: 3
  out: "{2}"
  export: "{2}/weights.safetensors"
)",
                                                 kind, data, out),
                                     "test.yaml");
}

}  // namespace

TEST(Idx, ReadsPlainAndGzipAndNamesEveryDefect) {
  const std::string dir = dc::test::temp_dir();
  std::vector<uint8_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  const std::string good = idx_bytes({2, 3, 4}, data);
  write_file(dir + "/plain", good);
  write_gz(dir + "/packed.gz", good);
  for (const std::string f : {"plain", "packed.gz"}) {
    const auto t = dc::data::read_idx(dir + "/" + f);
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(t[1][2][3].item<int>(), static_cast<int>(data[23]));
  }
  struct Bad { std::string name, bytes, needle; };
  const std::vector<Bad> bad = {
      {"magic", "\x01\x02\x08\x01" + good.substr(4), "not an IDX file"},
      {"type", idx_bytes({2}, {1, 2}, 0x0D), "element type 0x0d"},
      {"dims0", std::string("\0\0\x08\x00", 4), "dimensions"},
      {"zero", idx_bytes({0, 3}, {}), "size 0"},
      {"short_header", good.substr(0, 9), "truncated IDX header"},
      {"truncated", good.substr(0, good.size() - 1), "truncated"},
      {"trailing", good + "x", "trailing bytes"},
      {"tiny", "ab", "too short"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.name);
    write_file(dir + "/" + b.name, b.bytes);
    expect_error([&] { dc::data::read_idx(dir + "/" + b.name); }, {dir + "/" + b.name, b.needle});
  }
  // A gzip stream cut short, and one with damaged compressed bytes.
  std::ifstream in(dir + "/packed.gz", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  write_file(dir + "/cut.gz", gz.substr(0, gz.size() - 6));
  expect_error([&] { dc::data::read_idx(dir + "/cut.gz"); }, {dir + "/cut.gz"});
  std::string flipped = gz;
  for (size_t i = 12; i < flipped.size() - 8; i += 3) flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
  write_file(dir + "/flipped.gz", flipped);
  expect_error([&] { dc::data::read_idx(dir + "/flipped.gz"); }, {dir + "/flipped.gz"});
  expect_error([&] { dc::data::read_idx(dir + "/missing"); }, {dir + "/missing", "not found"});
  // A gzip stream inflating to 64 MiB behind a 10-element header: refused as trailing bytes after
  // reading 11 elements (harness/data/idx_core.h reads no more than the header promises, plus one).
  write_gz(dir + "/bomb.gz", idx_bytes({10}, std::vector<uint8_t>(10)) + std::string(64 << 20, '\0'));
  expect_error([&] { dc::data::read_idx(dir + "/bomb.gz"); }, {dir + "/bomb.gz", "trailing bytes"});
  // A header claiming 2^39 elements over a few bytes: truncated, nothing of that size allocated.
  write_file(dir + "/claim", idx_bytes({1u << 16, 1u << 16, 128}, {}) + "abc");
  expect_error([&] { dc::data::read_idx(dir + "/claim"); }, {dir + "/claim", "truncated"});
  // Images and labels that disagree.
  write_gz(dir + "/train-images-idx3-ubyte.gz", idx_bytes({2, 28, 28}, std::vector<uint8_t>(2 * 784)));
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({3}, {1, 2, 3}));
  expect_error([&] { dc::data::read_fashion_mnist(dir, "train"); }, {"3 labels for 2 images"});
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({2}, {1, 12}));
  expect_error([&] { dc::data::read_fashion_mnist(dir, "train"); }, {"label 12"});
  expect_error([&] { dc::data::read_fashion_mnist(dir, "valid"); }, {"split 'valid'"});
}

TEST(Idx, DebianFashionMnistWhenInstalled) {
  const std::string dir = dc::data::default_fashion_mnist_dir();
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " absent (Debian package dataset-fashion-mnist)";
  const auto train = dc::data::read_fashion_mnist(dir, "train");
  const auto test = dc::data::read_fashion_mnist(dir, "test");
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_TRUE(torch::equal(torch::bincount(test.labels), torch::full({10}, 1000, torch::kInt64)));
}

TEST(TrainSpec, StrictYamlErrorsNameFileLineAndKey) {
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: ddpm\n  out: o\n  export: e\n  lr: fast\n", "t.yaml"); },
               {"t.yaml:6", "train.lr", "fast"});
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: gan\n  out: o\n  export: e\n", "t.yaml"); }, {"t.yaml:3", "train.kind"});
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: ddpm\n  out: o\n  export: e\n  stpes: 3\n", "t.yaml"); },
               {"t.yaml:6", "stpes", "unknown key"});
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: ddpm\n  export: e\n", "t.yaml"); }, {"train.out", "missing"});
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: ddpm\n  model: {preset: nope}\n  out: o\n  export: e\n", "t.yaml"); },
               {"model.preset", "nope"});
  expect_error([] { dc::train::parse_train_spec("train:\n  name: x\n  kind: ddpm\n  out: o\n  export: e\n  ema: 1.5\n", "t.yaml"); }, {"train.ema"});
  expect_error([] { dc::train::load_train_spec("/nonexistent/train.yaml"); }, {"/nonexistent/train.yaml", "not found"});
  EXPECT_NO_THROW(dc::train::load_train_spec("configs/train/fmnist_ddpm.yaml"));
  EXPECT_NO_THROW(dc::train::load_train_spec("configs/train/fmnist_classifier.yaml"));
}

TEST(Train, OneDdpmStepLowersTheLossOnAFixedBatch) {
  auto spec = small_spec("ddpm", "unused", dc::test::temp_dir());
  spec.dropout = 0.0;
  spec.warmup = 0;
  spec.lr = 1e-4;
  dc::train::DdpmTrainer trainer(dc::models::DdpmConfig::preset("fmnist"), spec);
  torch::manual_seed(11);
  const auto x0 = dc::train::fmnist_to_model_space(torch::randint(0, 256, {8, 28, 28}, torch::kUInt8));
  const auto t = torch::randint(0, 1000, {8}, torch::kInt64);
  const auto noise = torch::randn_like(x0);
  const double before = trainer.loss_at(x0, t, noise);
  trainer.step_on(x0, t, noise, 0);
  const double after = trainer.loss_at(x0, t, noise);
  EXPECT_LT(after, before);
  EXPECT_GT(before, 0.0);
  // The padding is background: -1 around the 28x28 image.
  EXPECT_EQ(x0.sizes(), (std::vector<int64_t>{8, 1, 32, 32}));
  EXPECT_EQ(x0.slice(2, 0, 2).max().item<float>(), -1.0f);
}

TEST(Train, ResumedRunsEqualUninterruptedOnes) {
  const std::string data = fake_fashion_mnist(40);
  for (const std::string kind : {"ddpm", "classifier"}) {
    SCOPED_TRACE(kind);
    const std::string a = dc::test::temp_dir(), b = dc::test::temp_dir();
    const auto ra = dc::train::train(small_spec(kind, data, a));
    ASSERT_TRUE(ra.finished);
    dc::train::TrainOptions stop;
    stop.stop_after = 1;  // a checkpoint off the regular schedule
    const auto rb1 = dc::train::train(small_spec(kind, data, b), stop);
    EXPECT_FALSE(rb1.finished);
    EXPECT_EQ(rb1.step, 1);
    EXPECT_FALSE(fs::exists(b + "/weights.safetensors"));
    const auto rb2 = dc::train::train(small_spec(kind, data, b));
    EXPECT_EQ(rb2.resumed_from, 1);
    ASSERT_TRUE(rb2.finished);
    const auto wa = dc::st::load_all(dc::st::SafetensorsFile::open(a + "/weights.safetensors"));
    const auto wb = dc::st::load_all(dc::st::SafetensorsFile::open(b + "/weights.safetensors"));
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k;
    EXPECT_EQ(ra.mean_recent_loss, rb2.mean_recent_loss);
    // The log holds the whole loss curve.
    auto f = dc::h5::open_file(b + "/train.h5");
    EXPECT_EQ(dc::h5::read_tensor(f.id(), "loss").numel(), 4);
    // A resume with other settings is refused, naming the checkpoint.
    auto changed = small_spec(kind, data, b);
    changed.resolved["lr"] = 0.5;
    changed.lr = 0.5;
    changed.steps = 6;
    changed.resolved["steps"] = 6;
    expect_error([&] { dc::train::train(changed); }, {b + "/checkpoint.safetensors", "--fresh"});
  }
}

TEST(FidFmnist, SelfDistanceIsZeroAndCountsAddUp) {
  torch::manual_seed(5);
  dc::models::FmnistClassifier net;
  net->eval();
  const auto images = torch::randint(0, 256, {300, 1, 32, 32}, torch::kUInt8);
  const auto ev = dc::metrics::fmnist_evaluate(net, images, 0.5, 128);
  EXPECT_EQ(ev.n, 300);
  int64_t total = 0;
  for (auto c : ev.classes) total += c;
  EXPECT_EQ(total, 300);
  EXPECT_GE(ev.confident_fraction(), 0.0);
  EXPECT_LE(ev.confident_fraction(), 1.0);
  const std::string dir = dc::test::temp_dir();
  const auto mu = ev.stats.mean();
  const auto sigma = ev.stats.covariance();
  auto m = torch::from_blob(const_cast<double*>(mu.data()), {mu.size()}, torch::kFloat64).clone();
  auto s = torch::from_blob(const_cast<double*>(sigma.data()), {sigma.rows(), sigma.cols()}, torch::kFloat64).clone();  // symmetric
  dc::metrics::write_fid_stats(dir + "/ref.npz", m, s);
  EXPECT_LT(std::abs(dc::metrics::fid_fmnist(ev, dir + "/ref.npz")), 1e-6);
  // Batching does not change the statistics; 28x28 input equals its 32x32 padded version.
  const auto ev2 = dc::metrics::fmnist_evaluate(net, images, 0.5, 7);
  // float32 features from other batch shapes (other kernels) agree within 1e-6 (measured <= 1.5e-9);
  // the negative control, the same images mirrored, lies far outside the same tolerance.
  EXPECT_LT((ev2.stats.mean() - ev.stats.mean()).cwiseAbs().maxCoeff(), 1e-6);
  const auto mirrored = dc::metrics::fmnist_evaluate(net, images.flip({3}).contiguous(), 0.5, 128);
  EXPECT_GT((mirrored.stats.mean() - ev.stats.mean()).cwiseAbs().maxCoeff(), 1e-6);
  std::cout << fmt::format("[ measured ] FID-FMNIST feature means, batch 7 vs 128: max |diff| {:.3g}; mirrored images: {:.3g}\n",
                           (ev2.stats.mean() - ev.stats.mean()).cwiseAbs().maxCoeff(),
                           (mirrored.stats.mean() - ev.stats.mean()).cwiseAbs().maxCoeff());
  const auto crop = images.slice(2, 2, 30).slice(3, 2, 30).contiguous();
  EXPECT_LT((dc::metrics::fmnist_evaluate(net, crop, 0.5, 128).stats.mean() - ev.stats.mean()).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_THROW(dc::metrics::fmnist_evaluate(net, torch::zeros({2, 3, 32, 32}, torch::kUInt8)), dc::Error);
}

// `run` with metrics.fid_fmnist: FID-FMNIST, the confident fraction and the class histogram are
// stored with a provenance record naming the classifier's and the reference's SHA-256.
TEST(FidFmnist, RunStoresTheMetricWithProvenance) {
  const std::string dir = dc::test::temp_dir();
  const std::string data = fake_fashion_mnist(30);
  torch::manual_seed(2);
  dc::models::FmnistClassifier net;
  dc::st::NamedTensors w;
  for (const auto& p : net->named_parameters()) w.emplace_back(p.key(), p.value().detach());
  dc::st::save_tensors(dir + "/clf.safetensors", w);
  const auto stats = dc::test::run_cli(fmt::format("fmnist-stats --classifier {0}/clf.safetensors --data {1} --split test --out {0}/ref.npz",
                                                   dir, data));
  ASSERT_EQ(stats.code, 0) << stats.out << stats.err;
  const auto floor = dc::test::run_cli(fmt::format("fmnist-stats --classifier {0}/clf.safetensors --data {1} --split test --against {0}/ref.npz",
                                                   dir, data));
  ASSERT_EQ(floor.code, 0) << floor.err;
  const auto at = floor.out.find("FID-FMNIST: ");
  ASSERT_NE(at, std::string::npos) << floor.out;
  EXPECT_LT(std::abs(std::stod(floor.out.substr(at + 12))), 1e-4) << floor.out;  // the same images as the reference
  // An experiment on the fmnist preset (random weights) with the metric, n samples, optional sweep.
  const auto experiment = [&](const std::string& name, const std::string& classifier, int n, const std::string& sweep) {
    std::ofstream(dir + "/" + name + ".yaml") << fmt::format(R"(experiment: {1}
base:
  model: {{preset: fmnist}}
  sampler: {{name: ddim, steps: 4, spacing: uniform}}
  samples: {{n: {3}, batch: 3, grid: 0}}
  metrics:
    fid_fmnist: {{classifier: "{0}/{2}", reference: "{0}/ref.npz"}}
{4})",
                                                             dir, name, classifier, n, sweep);
  };
  experiment("exp", "clf.safetensors", 6, "sweep:\n  cache.k: [1]\n  cache.interval: [2]\n");
  const auto run = dc::test::run_cli(fmt::format("run {0}/exp.yaml --results {0}/r.h5", dir));
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  auto f = dc::h5::open_file(dir + "/r.h5");
  auto runs = dc::h5::open_group(f.id(), "runs");
  const auto ids = dc::h5::children(runs.id());
  ASSERT_EQ(ids.size(), 2u);
  for (const auto& id : ids) {
    auto g = dc::h5::open_group(runs.id(), id);
    auto m = dc::h5::open_group(g.id(), "metrics");
    const double fid = dc::h5::read_scalar(m.id(), "fid_fmnist");
    EXPECT_TRUE(std::isfinite(fid) && fid >= 0) << fid;
    const double conf = dc::h5::read_scalar(m.id(), "confident_fraction");
    EXPECT_TRUE(conf >= 0 && conf <= 1);
    auto p = dc::h5::open_group(g.id(), "provenance/fid_fmnist");
    EXPECT_EQ(dc::h5::get_attr_string(p.id(), "weights_sha256"), dc::metrics::sha256_file(dir + "/clf.safetensors"));
    EXPECT_EQ(dc::h5::get_attr_string(p.id(), "reference_sha256"), dc::metrics::sha256_file(dir + "/ref.npz"));
    EXPECT_EQ(dc::h5::get_attr_double(p.id(), "samples"), 6.0);
    EXPECT_EQ(dc::h5::read_tensor(g.id(), "quality/fmnist_classes").sum().item<int64_t>(), 6);
  }
  // The report shows the metric with its delta against the baseline.
  const auto rep = dc::test::run_cli(fmt::format("report {0}/r.h5", dir));
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_NE(rep.out.find("fid_fmnist"), std::string::npos) << rep.out;
  // A missing classifier stops the run before sampling, naming the file.
  experiment("bad", "nope.safetensors", 2, "");
  const auto bad = dc::test::run_cli(fmt::format("run {0}/bad.yaml --results {0}/bad.h5", dir));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE((bad.out + bad.err).find("nope.safetensors"), std::string::npos) << bad.out << bad.err;
}
