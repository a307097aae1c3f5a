// `samples.seed_mode: released`: the stream of DeepCache's released LDM script
// (harness/sampling/released_stream.h) and the draws a model's construction consumes before it
// (models::reference_init_draws). The checks below rebuild every expected draw from plain
// generators, independently of the stream's own fast-forward and bookkeeping.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "harness/config.h"
#include "harness/sampling/released_stream.h"
#include "models/autoencoder.h"
#include "models/model.h"
#include "models/openai_unet.h"

using dc::sampling::ReleasedStream;
using dc::sampling::ReleasedStreamConfig;

namespace {

ReleasedStreamConfig small_stream() {
  ReleasedStreamConfig c;
  c.seed = 5;
  c.ranks = 3;
  c.batch = 4;
  c.num_classes = 1000;
  c.sample_shape = {2, 3, 3};
  c.device_draws_per_batch = 1 + 6;  // x_T and six steps
  c.init_draws = 12345;
  return c;
}

// A plain generator of rank r after the model's construction (one 32-bit output per element of
// a randint over [0, 2): the CPU kernel's draw count) and after `batches` whole batches.
struct Expected {
  at::Generator cpu, device;
  Expected(const ReleasedStreamConfig& c, int r, int batches)
      : cpu(at::detail::createCPUGenerator(c.seed + r)), device(at::detail::createCPUGenerator(c.seed + r)) {
    if (c.init_draws > 0) torch::randint(0, 2, {c.init_draws}, cpu);
    for (int b = 0; b < batches; ++b) {
      torch::randint(0, c.num_classes, {c.batch}, cpu);
      for (int64_t d = 0; d < c.device_draws_per_batch; ++d) noise(c);
    }
  }
  torch::Tensor labels(const ReleasedStreamConfig& c) { return torch::randint(0, c.num_classes, {c.batch}, cpu); }
  torch::Tensor noise(const ReleasedStreamConfig& c) {
    std::vector<int64_t> shape = c.sample_shape;
    shape.insert(shape.begin(), c.batch);
    return torch::randn(shape, device);
  }
};

// Runs one batch the way the runner does: x_T, then `steps` step draws, then end_batch.
ReleasedStream::Batch run_batch(ReleasedStream& s, int64_t g, int64_t rows, int steps, std::vector<torch::Tensor>* step_noise = nullptr) {
  auto b = s.batch(g, rows);
  for (int i = 0; i < steps; ++i) {
    torch::Tensor n = b.step_noise(b.x_T);
    if (step_noise) step_noise->push_back(n);
  }
  s.end_batch();
  return b;
}

}  // namespace

TEST(ReleasedStream, RankGeneratorsAfterTheInitDrawsGiveLabelsThenNoise) {
  const auto c = small_stream();
  ReleasedStream s(c);
  for (int g = 0; g < c.ranks; ++g) {  // the first batch of every rank
    std::vector<torch::Tensor> steps;
    const auto b = run_batch(s, g, c.batch, 6, &steps);
    Expected e(c, g, 0);
    EXPECT_TRUE(torch::equal(b.labels, e.labels(c))) << "rank " << g;
    EXPECT_TRUE(torch::equal(b.x_T, e.noise(c))) << "rank " << g;
    for (const auto& n : steps) EXPECT_TRUE(torch::equal(n, e.noise(c))) << "rank " << g;
    EXPECT_GE(b.labels.min().item<int64_t>(), 0);
    EXPECT_LT(b.labels.max().item<int64_t>(), c.num_classes);
  }
}

TEST(ReleasedStream, GlobalBatchesInterleaveRanksAndSkippedOnesAreDrawnWhole) {
  const auto c = small_stream();
  // Global batch 7 is rank 1's third batch (7 = 2 * 3 + 1): asked alone (a shard or a resumed run
  // starting there), its two earlier batches are drawn and dropped, device draws included.
  ReleasedStream alone(c);
  const auto b7 = run_batch(alone, 7, c.batch, 6);
  Expected e(c, 1, 2);
  EXPECT_TRUE(torch::equal(b7.labels, e.labels(c)));
  EXPECT_TRUE(torch::equal(b7.x_T, e.noise(c)));
  // In order, and with a sampler that asks for fewer draws than the script makes (the rest are
  // drawn at end_batch), the same batch comes out.
  ReleasedStream seq(c);
  for (int64_t g = 0; g < 7; ++g) run_batch(seq, g, c.batch, static_cast<int>(g % 3));
  const auto again = run_batch(seq, 7, c.batch, 6);
  EXPECT_TRUE(torch::equal(again.labels, b7.labels));
  EXPECT_TRUE(torch::equal(again.x_T, b7.x_T));
  // prepare(7) (what the runner does before a batch's clock starts) draws the skipped batches
  // ahead: batch 7 is the same; a batch before it is then refused, and so is prepare mid-batch.
  ReleasedStream ahead(c);
  ahead.prepare(7);
  ahead.prepare(7);  // twice: nothing more drawn
  const auto prepared = run_batch(ahead, 7, c.batch, 6);
  EXPECT_TRUE(torch::equal(prepared.labels, b7.labels));
  EXPECT_TRUE(torch::equal(prepared.x_T, b7.x_T));
  EXPECT_THROW(ahead.prepare(1), dc::Error);  // rank 1's first: already past
  ahead.batch(9, c.batch);
  EXPECT_THROW(ahead.prepare(11), dc::Error);  // before end_batch()
}

TEST(ReleasedStream, AShortLastBatchIsDrawnWholeAndCut) {
  const auto c = small_stream();
  ReleasedStream s(c);
  const auto b = run_batch(s, 0, 3, 6);
  Expected e(c, 0, 0);
  ASSERT_EQ(b.labels.size(0), 3);
  ASSERT_EQ(b.x_T.size(0), 3);
  EXPECT_TRUE(torch::equal(b.labels, e.labels(c).slice(0, 0, 3)));
  EXPECT_TRUE(torch::equal(b.x_T, e.noise(c).slice(0, 0, 3)));
}

TEST(ReleasedStream, RefusesBatchesOutOfOrderAndExtraDraws) {
  const auto c = small_stream();
  ReleasedStream s(c);
  run_batch(s, 4, c.batch, 6);  // rank 1's second batch
  EXPECT_THROW(s.batch(1, c.batch), dc::Error);  // rank 1's first: already past
  auto b = s.batch(2, c.batch);
  for (int i = 0; i < 7; ++i) b.step_noise(b.x_T);  // x_T + 7 > 1 + 6
  EXPECT_THROW(s.end_batch(), dc::Error);
  EXPECT_THROW(ReleasedStream([] { auto k = small_stream(); k.ranks = 0; return k; }()), dc::Error);
}

// The rule behind reference_init_draws against LibTorch's own default initialisation, which
// draws like PyTorch's: build a small CompVis UNet with its class embedder and a VQ autoencoder
// from a seeded global generator; the generator then stands where a fresh one stands after
// default_init_draws of both.
TEST(ReferenceInit, DefaultInitDrawsEqualWhatConstructionConsumes) {
  dc::models::OpenAIUNetConfig u;
  u.image_size = 8;
  u.model_channels = 32;
  u.attention_resolutions = {2};
  u.num_res_blocks = 1;
  u.channel_mult = {1, 2};
  u.context_dim = 24;
  dc::models::AutoencoderConfig a;
  a.n_embed = 37;  // 37 * 3 rows: not a multiple of 16 (normal_fill's tail)
  a.resolution = 16;
  a.ch = 32;
  a.ch_mult = {1, 2};
  a.num_res_blocks = 1;
  for (uint64_t seed : {0ULL, 11ULL}) {
    torch::manual_seed(seed);
    dc::models::ClassConditionedUNet net(u, 7);
    dc::models::VQModel vq(a);
    const torch::Tensor after = torch::randint(0, 1 << 30, {8});
    const int64_t k = dc::models::default_init_draws(*net) + dc::models::default_init_draws(*vq);
    auto g = at::detail::createCPUGenerator(seed);
    torch::randint(0, 2, {k}, g);
    EXPECT_TRUE(torch::equal(after, torch::randint(0, 1 << 30, {8}, g))) << "seed " << seed << ", " << k << " draws";
    EXPECT_FALSE(torch::equal(after, torch::randint(0, 1 << 30, {8}, g)));  // one draw off is another stream
  }
}

// The released script builds LatentDiffusion (cin256-v2) after torch.manual_seed(0 + rank).
// 456,605,089 is measured, not derived: python3-torch 1.13 (Debian) building DeepCache's
// experiments/ldm modules with the cin256-v2 config (openaimodel.UNetModel, the VQ Encoder and
// Decoder, taming's VectorQuantizer2(8192, 3) with its uniform_ re-initialisation, the 1x1
// quant convs, ClassEmbedder(1001, 512)); after manual_seed(s) the next randint equalled a fresh
// generator's after exactly this many 32-bit draws, for s = 0 and s = 3.
TEST(ReferenceInit, TheReleasedLdmScriptsConstructionDraws) {
  const auto m = dc::models::build_model("ldm", "cin256_v2", "random");
  EXPECT_EQ(dc::models::reference_init_draws(m), 456605089);
}

TEST(ReleasedStream, ConfigValidationAndRunIds) {
  // base: model, sampler, guidance and the given samples block (+ extra lines of base).
  auto yaml = [](const std::string& samples, const std::string& extra = "  conditioning: {guidance: 1.5}\n",
                 const std::string& model = "{family: ldm, preset: cin256_v2, weights: random}\n  sampler: {name: ldm_ddim, steps: 4}") {
    return "experiment: t\nbase:\n  model: " + model + "\n  samples: " + samples + "\n" + extra;
  };
  auto error_of = [](const std::string& y) {
    try {
      dc::harness::parse_experiment(y, "exp.yaml", ".");
    } catch (const dc::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto id_of = [](const std::string& y) { return dc::harness::parse_experiment(y, "exp.yaml", ".").runs.at(0).run_id; };
  const std::string released = yaml("{n: 4, batch: 2, seed_mode: released, ranks: 2}");
  EXPECT_EQ(error_of(released), "");
  // batch and ranks change the samples: they are part of the id; in per-sample mode batch is not.
  EXPECT_NE(id_of(released), id_of(yaml("{n: 4, batch: 4, seed_mode: released, ranks: 2}")));
  EXPECT_NE(id_of(released), id_of(yaml("{n: 4, batch: 2, seed_mode: released, ranks: 1}")));
  EXPECT_EQ(id_of(yaml("{n: 4, batch: 2}")), id_of(yaml("{n: 4, batch: 4}")));
  EXPECT_EQ(id_of(yaml("{n: 4, batch: 2}")), id_of(yaml("{n: 4, batch: 2, seed_mode: per_sample}")));
  EXPECT_NE(error_of(yaml("{seed_mode: rank}")).find("samples.seed_mode"), std::string::npos);
  EXPECT_NE(error_of(yaml("{ranks: 8}")).find("ranks belong to samples.seed_mode released"), std::string::npos);
  EXPECT_NE(error_of(yaml("{seed_mode: released, ranks: 0}")).find("samples.ranks"), std::string::npos);
  EXPECT_NE(error_of(yaml("{seed_mode: released}", "  conditioning: {classes: balanced}\n")).find("leave classes at random"),
            std::string::npos);
  EXPECT_NE(error_of(yaml("{seed_mode: released}", "", "{family: ddpm, preset: cifar10, weights: random}"))
                .find("released reproduces the stream of DeepCache's released LDM-4-G script"),
            std::string::npos);
}
