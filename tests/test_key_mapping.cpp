// Key dialect mapping: prefix selection, ignored prefixes, rename tables with transforms, and the
// sd15 single-file <-> diffusers map checked against the full-size manifests on both sides.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "models/weights/key_mapping.h"
#include "models/weights/manifest.h"
#include "support/fixtures.h"

using dc::weights::KeyMapping;
using dc::weights::KeyShape;
using dc::weights::Transform;

TEST(KeyMapping, IdentityKeepsEverything) {
  const std::vector<KeyShape> keys = {{"a.weight", {2, 3}, "float32"}, {"b", {1}, "int64"}};
  const auto m = KeyMapping().apply(keys, "f");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].target, "a.weight");
  EXPECT_EQ(m[1].dtype, "int64");
  EXPECT_EQ(KeyMapping().describe(), "identity");
}

TEST(KeyMapping, SelectPrefixStripsAndDropsOthersThenIgnoresThenRenames) {
  const std::vector<KeyShape> keys = {{"model.diffusion_model.conv.weight", {4, 3, 1, 1}, "float32"},
                                      {"model.diffusion_model.loss.x", {1}, "float32"},
                                      {"first_stage_model.y", {1}, "float32"},
                                      {"betas", {1000}, "float32"}};
  KeyMapping km;
  km.select_prefix("model.diffusion_model.").ignore_prefix("loss.").rename("conv.weight", "proj.weight", Transform::Squeeze1x1);
  const auto m = km.apply(keys, "f");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].source, "model.diffusion_model.conv.weight");
  EXPECT_EQ(m[0].target, "proj.weight");
  EXPECT_EQ(m[0].shape, (std::vector<int64_t>{4, 3}));
  EXPECT_NE(km.describe().find("model.diffusion_model."), std::string::npos);
}

TEST(KeyMapping, TransformsCheckShapes) {
  EXPECT_EQ(dc::weights::transformed_shape({4, 3}, Transform::Unsqueeze1x1), (std::vector<int64_t>{4, 3, 1, 1}));
  EXPECT_FALSE(dc::weights::transformed_shape({4, 3, 3, 3}, Transform::Squeeze1x1).has_value());
  KeyMapping km;
  km.rename("w", "v", Transform::Squeeze1x1);
  try {
    km.apply({{"w", {4, 3, 3, 3}, "float32"}}, "file.safetensors");
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("file.safetensors: tensor 'w'"), std::string::npos) << e.what();
  }
}

TEST(KeyMapping, TwoSourcesOnOneTargetIsAnError) {
  KeyMapping km;
  km.rename("a", "c").rename("b", "c");
  EXPECT_THROW(km.apply({{"a", {1}, "float32"}, {"b", {1}, "float32"}}, "f"), dc::Error);
}

TEST(KeyMapping, MapJsonErrorsNameFileAndEntry) {
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/bad.map.json") << R"({"m": {"a": ["b", "rotate"]}})";
  try {
    KeyMapping::from_map_json(dir + "/bad.map.json", "m", false);
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown transform 'rotate'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.map.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(KeyMapping::from_map_json(dir + "/bad.map.json", "other", false), dc::Error);
  EXPECT_THROW(KeyMapping::from_map_json(dir + "/none.map.json", "m", false), dc::Error);
}

// Each *.map.json in the fixtures maps between two manifests of the same folder. For the sd15
// map: diffusers UNet/VAE manifests, mapped back to CompVis names, must equal the single-file
// manifest's model.diffusion_model.* / first_stage_model.* parts exactly (names and shapes).
TEST(KeyMapping, Sd15MapTurnsDiffusersManifestsIntoTheSingleFileManifest) {
  const std::string dir = dc::test::fixtures_root() + "/sd15";
  const std::string map = dir + "/sd15_single_file_to_diffusers.map.json";
  if (!std::filesystem::exists(map)) GTEST_SKIP() << map << " not present";
  const auto single = dc::weights::Manifest::load(dir + "/sd15_single_file_unet_vae.keys.json");
  struct Part { std::string diffusers_manifest, diffusers_prefix, compvis_prefix; };
  for (const Part& p : {Part{"sd15_unet.keys.json", "unet.", "model.diffusion_model."},
                        Part{"sd15_vae.keys.json", "vae.", "first_stage_model."}}) {
    SCOPED_TRACE(p.diffusers_manifest);
    const auto diffusers = dc::weights::Manifest::load(dir + "/" + p.diffusers_manifest);
    const KeyMapping to_compvis = KeyMapping::from_map_json(map, "compvis_to_diffusers", /*invert=*/true,
                                                            p.diffusers_prefix, p.compvis_prefix);
    EXPECT_GT(to_compvis.rename_count(), 0u);
    const auto mapped = dc::weights::keys_of(to_compvis.apply(diffusers.keys, diffusers.path));
    std::vector<KeyShape> expected;
    KeyMapping part;
    part.select_prefix(p.compvis_prefix);
    for (const auto& m : part.apply(single.keys, single.path)) expected.push_back({m.target, m.shape, m.dtype});
    const auto diff = dc::weights::diff_keys(expected, mapped);
    EXPECT_TRUE(diff.ok()) << diff.summary() << (diff.missing.empty() ? "" : " first missing: " + diff.missing[0])
                           << (diff.unexpected.empty() ? "" : " first unexpected: " + diff.unexpected[0]);
  }
}
