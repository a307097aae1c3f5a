// FID statistics and Fréchet distance against every frechet_* case in tests/fixtures/fid
// (features stored, or regenerated from the case's hash recipe), shard merging, and errors.
#include <gtest/gtest.h>

#include "common/error.h"
#include "metrics/fid.h"
#include "models/weights/safetensors.h"
#include "support/fixtures.h"

using dc::metrics::FeatureStats;
using dc::metrics::frechet_distance;

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The recipe the fixture json describes in `feature_recipe.text`, with its set parameters.
torch::Tensor recipe_features(const nlohmann::json& set, int64_t n_rows, int64_t dims) {
  const uint64_t s = set["s"].get<uint64_t>();
  const double a = set["a"].get<double>(), b = set["b"].get<double>();
  torch::Tensor out = torch::empty({n_rows, dims}, torch::kFloat64);
  double* p = out.data_ptr<double>();
  std::vector<double> u(dims + 1);
  for (int64_t n = 0; n < n_rows; ++n) {
    for (int64_t d = 0; d <= dims; ++d)
      u[d] = static_cast<double>(splitmix64(s * (uint64_t{1} << 40) + static_cast<uint64_t>(n) * 4096 + static_cast<uint64_t>(d)) >> 11) *
             0x1.0p-53;
    for (int64_t d = 0; d < dims; ++d)
      p[n * dims + d] = ((u[d] * u[d]) + (a * u[(d + 1) % dims])) + ((b * u[dims]) * static_cast<double>(d % 7) / 7.0);
  }
  return out;
}

torch::Tensor t_of(const Eigen::MatrixXd& m) {
  torch::Tensor t = torch::empty({m.rows(), m.cols()}, torch::kFloat64);
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(t.data_ptr<double>(), m.rows(), m.cols()) = m;
  return t;
}
torch::Tensor t_of(const Eigen::VectorXd& v) { return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone(); }
torch::Tensor scalar(double v) { return torch::tensor({v}, torch::kFloat64); }

bool is_frechet_case(const dc::test::Case& c) { return c.family == "fid" && c.json.contains("terms"); }
const bool kFrechetSuite = dc::test::register_fixture_suite("FrechetCase", is_frechet_case);
std::vector<dc::test::Case> frechet_cases() { return dc::test::cases_where("fid", is_frechet_case); }

}  // namespace

class FrechetCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(FrechetCase, StatisticsAndDistanceEqualPytorchFid) {
  const auto& c = GetParam();
  const auto io = dc::st::SafetensorsFile::open(c.io_path());
  torch::Tensor act1, act2;
  if (io.find("act1")) {
    act1 = c.io_tensor("act1");
    act2 = c.io_tensor("act2");
  } else {
    const auto& r = c.json["feature_recipe"];
    act1 = recipe_features(r["set1"], r["N"].get<int64_t>(), r["D"].get<int64_t>());
    act2 = recipe_features(r["set2"], r["N"].get<int64_t>(), r["D"].get<int64_t>());
    ASSERT_TRUE(torch::equal(act1.slice(0, 0, 8), c.io_tensor("act1_head"))) << "feature generator";
    ASSERT_TRUE(torch::equal(act2.slice(0, 0, 8), c.io_tensor("act2_head")));
  }
  FeatureStats s1, s2;
  s1.add(act1);
  s2.add(act2);
  const auto mu1 = s1.mean(), mu2 = s2.mean();
  const auto sig1 = s1.covariance(), sig2 = s2.covariance();
  EXPECT_TRUE(dc::test::matches_reference(c, "mu1", t_of(mu1), c.io_tensor("mu1")));
  EXPECT_TRUE(dc::test::matches_reference(c, "mu2", t_of(mu2), c.io_tensor("mu2")));
  if (io.find("sigma1")) {
    EXPECT_TRUE(dc::test::matches_reference(c, "sigma1", t_of(sig1), c.io_tensor("sigma1")));
    EXPECT_TRUE(dc::test::matches_reference(c, "sigma2", t_of(sig2), c.io_tensor("sigma2")));
  }
  if (io.find("sigma1_diag")) {
    EXPECT_TRUE(dc::test::matches_reference(c, "sigma1_diag", t_of(Eigen::VectorXd(sig1.diagonal())), c.io_tensor("sigma1_diag")));
    EXPECT_TRUE(dc::test::matches_reference(c, "sigma1_block32", t_of(Eigen::MatrixXd(sig1.topLeftCorner(32, 32))), c.io_tensor("sigma1_block32")));
    EXPECT_TRUE(dc::test::matches_reference(c, "sigma2_block32", t_of(Eigen::MatrixXd(sig2.topLeftCorner(32, 32))), c.io_tensor("sigma2_block32")));
  }
  const auto r = frechet_distance(mu1, sig1, mu2, sig2);
  const auto& terms = c.json["terms"];
  EXPECT_TRUE(dc::test::matches_reference(c, "mean_term", scalar(r.mean_term), scalar(terms["mean_term"].get<double>())));
  EXPECT_TRUE(dc::test::matches_reference(c, "trace_sigma1", scalar(r.trace_sigma1), scalar(terms["trace_sigma1"].get<double>())));
  EXPECT_TRUE(dc::test::matches_reference(c, "trace_sigma2", scalar(r.trace_sigma2), scalar(terms["trace_sigma2"].get<double>())));
  // The symmetric eigen route never needs the reference's eps fallback (README trap): where the
  // reference took it, compare with its eigen-route value; elsewhere with its FID.
  const bool eps_path = c.json.value("eps_offset_path_taken", false);
  EXPECT_FALSE(r.eps_offset_used);
  EXPECT_TRUE(dc::test::matches_reference(c, eps_path ? "fid_eigen_no_offset" : "fid", scalar(r.fid),
                                          c.io_tensor(eps_path ? "fid_eigen_no_offset" : "fid")));
  dc::metrics::FrechetOptions forced;
  forced.force_eps_offset = true;
  forced.eps = c.json["config"].value("eps", 1e-6);
  const auto rf = frechet_distance(mu1, sig1, mu2, sig2, forced);
  EXPECT_TRUE(rf.eps_offset_used);
  EXPECT_TRUE(dc::test::matches_reference(c, "fid_eps_offset", scalar(rf.fid), c.io_tensor("fid_eps_offset")));
}

INSTANTIATE_TEST_SUITE_P(All, FrechetCase, ::testing::ValuesIn(frechet_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FrechetCase);

TEST(FeatureStats, MergedShardsEqualOnePassAndASetHasZeroDistanceToItself) {
  torch::manual_seed(5);
  const auto x = torch::randn({500, 16}, torch::kFloat64) * 3 + 1;
  FeatureStats whole, a, b, c;
  whole.add(x);
  a.add(x.slice(0, 0, 123));
  b.add(x.slice(0, 123, 400));
  c.add(x.slice(0, 400));
  FeatureStats merged;
  merged.merge(a);
  merged.merge(b);
  merged.merge(c);
  EXPECT_EQ(merged.count(), 500);
  EXPECT_LT((merged.mean() - whole.mean()).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((merged.covariance() - whole.covariance()).cwiseAbs().maxCoeff(), 1e-10);
  // np.cov of the same data, computed independently with torch.
  const auto centered = x - x.mean(0, true);
  const auto cov = torch::mm(centered.t(), centered) / (500 - 1);
  EXPECT_TRUE(torch::allclose(t_of(whole.covariance()), cov, 1e-12, 1e-10));
  const auto self = frechet_distance(whole.mean(), whole.covariance(), whole.mean(), whole.covariance());
  EXPECT_NEAR(self.fid, 0.0, 1e-6);
}

TEST(FeatureStats, ErrorsAreClear) {
  FeatureStats a(4), b(5);
  b.add(torch::zeros({2, 5}));
  EXPECT_THROW(a.merge(b), dc::Error);
  FeatureStats one;
  one.add(torch::zeros({1, 3}));
  EXPECT_THROW(one.covariance(), dc::Error);
  Eigen::VectorXd m = Eigen::VectorXd::Zero(3);
  Eigen::MatrixXd s = Eigen::MatrixXd::Identity(3, 3);
  EXPECT_THROW(frechet_distance(m, s, Eigen::VectorXd::Zero(4), s), dc::Error);
  s(0, 0) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(frechet_distance(m, s, m, s), dc::Error);
}

// ---- .npz statistics files ----------------------------------------------------------------
#include <sys/wait.h>

#include <fstream>

#include "metrics/npy_core.h"
#include "metrics/npz.h"

TEST(Npz, RoundTripEveryDtypeAndFidStats) {
  const std::string dir = dc::test::temp_dir();
  torch::manual_seed(1);
  const auto mu = torch::randn({7}, torch::kFloat64), sigma = torch::randn({7, 7}, torch::kFloat64);
  dc::metrics::write_fid_stats(dir + "/s.npz", mu, sigma);
  const auto [m2, s2] = dc::metrics::read_fid_stats(dir + "/s.npz");
  EXPECT_TRUE(torch::equal(m2, mu));
  EXPECT_TRUE(torch::equal(s2, sigma));
  const std::vector<std::pair<std::string, torch::Tensor>> arrays = {
      {"f4", torch::randn({2, 3})}, {"i8", torch::arange(5)}, {"u1", torch::arange(6).to(torch::kUInt8).reshape({2, 3})},
      {"scalar", torch::tensor(3.5, torch::kFloat64)}, {"f2", torch::randn({3}).to(torch::kFloat16)},
      {"i4", torch::arange(4).to(torch::kInt32)}, {"b1", torch::tensor({true, false, true})}, {"f8", torch::randn({2}, torch::kFloat64)}};
  dc::metrics::write_npz(dir + "/a.npz", arrays);
  const auto back = dc::metrics::read_npz(dir + "/a.npz");
  for (const auto& [k, v] : arrays) EXPECT_TRUE(torch::equal(back.at(k), v)) << k;
  // The torch-free reader's dtype list (metrics/npy_core) and npz.cpp's tensor types are two tables:
  // every descriptor the core admits comes back as a tensor of its item size (arrays are named
  // after their descriptor without the byte-order character).
  for (const auto& [descr, size] : dc::metrics::npy::descriptors()) {
    ASSERT_TRUE(back.count(descr.substr(1))) << descr << ": a descriptor of npy_core without a round trip here";
    EXPECT_EQ(static_cast<std::size_t>(back.at(descr.substr(1)).element_size()), size) << descr;
  }
}

TEST(Npz, InteroperatesWithNumpy) {
  const std::string py = dc::test::python_with("numpy");
  if (py.empty()) GTEST_SKIP() << "no Python with numpy";
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/w.py") << R"(import numpy as np, sys
d = sys.argv[1]
mu = np.arange(5, dtype=np.float64) / 3
sigma = np.asfortranarray(np.arange(25, dtype=np.float64).reshape(5, 5) / 7)
np.savez(d + '/plain.npz', mu=mu, sigma=sigma)
np.savez_compressed(d + '/compressed.npz', mu=mu.astype(np.float32), sigma=sigma)
ours = np.load(d + '/ours.npz')
assert np.array_equal(ours['mu'], mu) and np.array_equal(ours['sigma'], sigma), 'numpy reads ours'
)";
  dc::metrics::write_fid_stats(dir + "/ours.npz", torch::arange(5, torch::kFloat64) / 3, torch::arange(25, torch::kFloat64).reshape({5, 5}) / 7);
  ASSERT_EQ(std::system((py + " " + dir + "/w.py " + dir).c_str()), 0);
  for (const char* f : {"/plain.npz", "/compressed.npz"}) {
    const auto [mu, sigma] = dc::metrics::read_fid_stats(dir + f);
    EXPECT_TRUE(torch::allclose(mu, torch::arange(5, torch::kFloat64) / 3, 0, 1e-7)) << f;
    EXPECT_TRUE(torch::equal(sigma, torch::arange(25, torch::kFloat64).reshape({5, 5}) / 7)) << f << " (Fortran order)";
  }
}

TEST(Npz, DamagedFilesAreClearErrors) {
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/junk.npz") << "not a zip";
  EXPECT_THROW(dc::metrics::read_npz(dir + "/junk.npz"), dc::Error);
  EXPECT_THROW(dc::metrics::read_npz(dir + "/absent.npz"), dc::Error);
  dc::metrics::write_npz(dir + "/only_mu.npz", {{"mu", torch::zeros({3}, torch::kFloat64)}});
  try {
    dc::metrics::read_fid_stats(dir + "/only_mu.npz");
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'sigma' is missing"), std::string::npos) << e.what();
  }
  dc::metrics::write_npz(dir + "/bad_shape.npz", {{"mu", torch::zeros({3}, torch::kFloat64)}, {"sigma", torch::zeros({4, 4}, torch::kFloat64)}});
  EXPECT_THROW(dc::metrics::read_fid_stats(dir + "/bad_shape.npz"), dc::Error);
  // Headers claiming absurd shapes (whose element counts overflow 64 bits, or whose digits do) are
  // refused before anything is allocated; written with Python's zipfile as another program would.
  if (std::system("/usr/bin/python3 -c 'import zipfile' >/dev/null 2>&1") != 0) return;
  for (const std::string shape : {"(4611686018427387904, 4)", "(99999999999999999999999,)", "(65536, 65536, 65537)"}) {
    const std::string path = dir + "/huge.npz";
    const std::string py = "/usr/bin/python3 -c \"import sys, zipfile; h = \\\"{'descr': '<f8', 'fortran_order': False, 'shape': " + shape +
                           ", }\\\"; h = h + ' ' * (63 - (10 + len(h)) % 64) + '\\\\n'; "
                           "zipfile.ZipFile(sys.argv[1], 'w').writestr('a.npy', b'\\\\x93NUMPY\\\\x01\\\\x00' + len(h).to_bytes(2, 'little') + h.encode())\" " + path;
    ASSERT_EQ(std::system(py.c_str()), 0) << py;
    try {
      dc::metrics::read_npz(path);
      ADD_FAILURE() << shape << " accepted";
    } catch (const dc::Error& e) {
      EXPECT_NE(std::string(e.what()).find("declares more than 2^48 elements"), std::string::npos) << e.what();
    }
  }
}

// ---- Inception Score: closed forms -----------------------------------------------------------
#include "metrics/inception_score.h"

TEST(InceptionScore, ClosedFormsOnConstructedDistributions) {
  // Confident predictions spread evenly over K classes in every split: IS = K exactly (up to the
  // softmax's e^-60 leak), std 0.
  const int64_t K = 7, per_split = 14, splits = 10, C = 1008;
  torch::Tensor logits = torch::zeros({per_split * splits, C}, torch::kFloat64);
  for (int64_t i = 0; i < logits.size(0); ++i) logits[i][(i % K) * 3] = 60.0;
  const auto r = dc::metrics::inception_score(logits, static_cast<int>(splits));
  EXPECT_NEAR(r.mean, static_cast<double>(K), 1e-9);
  EXPECT_NEAR(r.std, 0.0, 1e-9);
  // Identical predictions carry no information: IS = 1.
  EXPECT_NEAR(dc::metrics::inception_score(torch::randn({1, C}).repeat({50, 1}), 5).mean, 1.0, 1e-9);
  // Two splits with different class counts: K1 = 2 and K2 = 4 -> mean 3, std 1.
  torch::Tensor two = torch::zeros({8, C}, torch::kFloat64);
  for (int64_t i = 0; i < 4; ++i) two[i][i % 2] = 60.0;
  for (int64_t i = 4; i < 8; ++i) two[i][10 + i % 4] = 60.0;
  const auto r2 = dc::metrics::inception_score(two, 2);
  EXPECT_NEAR(r2.mean, 3.0, 1e-9);
  EXPECT_NEAR(r2.std, 1.0, 1e-9);
  // A non-degenerate case against the definition evaluated independently in double loops.
  torch::manual_seed(2);
  const auto lg = torch::randn({20, 5}, torch::kFloat64) * 2;
  double sum = 0;
  std::vector<double> s;
  for (int split = 0; split < 2; ++split) {
    std::vector<double> py(5, 0.0);
    std::vector<std::vector<double>> p(10, std::vector<double>(5));
    for (int i = 0; i < 10; ++i) {
      double z = 0;
      for (int c = 0; c < 5; ++c) z += std::exp(lg[split * 10 + i][c].item<double>());
      for (int c = 0; c < 5; ++c) py[c] += (p[i][c] = std::exp(lg[split * 10 + i][c].item<double>()) / z) / 10;
    }
    double kl = 0;
    for (int i = 0; i < 10; ++i)
      for (int c = 0; c < 5; ++c) kl += p[i][c] * (std::log(p[i][c]) - std::log(py[c])) / 10;
    s.push_back(std::exp(kl));
    sum += s.back();
  }
  EXPECT_NEAR(dc::metrics::inception_score(lg, 2).mean, sum / 2, 1e-12);
  EXPECT_THROW(dc::metrics::inception_score(lg, 21), dc::Error);
}
