// The latent-diffusion first stage (VQ-f4) against the reference: every `tests/fixtures/ldm`
// case with a `ddconfig`: quantisation (indices exact, compared first as the fixture README says:
// it is a hard decision), decode with and without quantisation, and the encoder path.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/autoencoder.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"
#include "support/ldm.h"

using dc::models::VQModel;

namespace {
bool is_vq_case(const dc::test::Case& c) {
  return c.family == "ldm" && c.json.contains("config") && c.json["config"].contains("ddconfig") &&
         c.json["config"].value("n_embed", 0) > 0;
}
const bool kVqSuite = dc::test::register_fixture_suite("VqCase", is_vq_case);
std::vector<dc::test::Case> vq_cases() { return dc::test::cases_where("ldm", is_vq_case); }
}  // namespace

class VqCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(VqCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  VQModel vq(dc::test::autoencoder_config(c.json.at("config")));
  dc::weights::LoadOptions opt;
  opt.module_name = "VQ autoencoder (" + c.id() + ")";
  dc::weights::load_strict(*vq, dc::st::SafetensorsFile::open(*c.weights_path()), opt);
  vq->eval();
  // Decode path: quantise (hard decision: indices exact), post_quant_conv, decoder.
  const auto z = c.io_tensor("z");
  torch::Tensor indices;
  const auto quant = vq->quantize->forward(z, &indices);
  EXPECT_TRUE(torch::equal(indices, c.io_tensor("indices"))) << "codebook indices";
  EXPECT_TRUE(dc::test::matches_reference(c, "quant", quant, c.io_tensor("quant")));
  EXPECT_TRUE(dc::test::matches_reference(c, "post_quant", vq->post_quant_conv->forward(quant), c.io_tensor("post_quant")));
  EXPECT_TRUE(dc::test::matches_reference(c, "image_decoded", vq->decode(z), c.io_tensor("image_decoded")));
  EXPECT_TRUE(dc::test::matches_reference(c, "image_decoded_no_quant", vq->decode(z, false), c.io_tensor("image_decoded_no_quant")));
  // Encoder path: encode does not quantise; indices first (the README's order: a tiny margin).
  const auto latent = vq->encode(c.io_tensor("image_in"));
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_latent", latent, c.io_tensor("enc_latent")));
  torch::Tensor enc_indices;
  const auto enc_quant = vq->quantize->forward(c.io_tensor("enc_latent"), &enc_indices);
  ASSERT_TRUE(torch::equal(enc_indices, c.io_tensor("enc_indices"))) << "encoder-path indices (from the reference latent)";
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_quant", enc_quant, c.io_tensor("enc_quant")));
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_image_decoded", vq->decode(c.io_tensor("enc_latent")), c.io_tensor("enc_image_decoded")));
}

INSTANTIATE_TEST_SUITE_P(All, VqCase, ::testing::ValuesIn(vq_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VqCase);

// The full-size vq-f4 preset has exactly the standalone checkpoint's keys (without loss.*).
TEST(Autoencoder, VqF4PresetEqualsTheCheckpointManifest) {
  const std::string manifest = dc::test::fixtures_root() + "/ldm/vq_f4.keys.json";
  if (!std::filesystem::exists(manifest)) GTEST_SKIP() << manifest << " is absent";
  VQModel vq(dc::models::AutoencoderConfig::preset("vq_f4"));
  std::vector<dc::weights::KeyShape> wanted;
  for (const auto& k : dc::weights::Manifest::load(manifest).keys)
    if (k.name.rfind("loss.", 0) != 0) wanted.push_back(k);
  const auto diff = dc::weights::check_module(*vq, wanted);
  EXPECT_TRUE(diff.ok() && diff.missing.empty() && diff.unexpected.empty()) << diff.summary();
  int64_t n = 0;
  for (const auto& p : vq->parameters()) n += p.numel();
  EXPECT_EQ(n, 55322782) << "the README's first-stage size";
}
