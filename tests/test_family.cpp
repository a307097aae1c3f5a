// Family recognition from key patterns, on every fixture weights file and full-size manifest.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "models/weights/family.h"
#include "models/weights/manifest.h"
#include "models/weights/safetensors.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {
std::set<std::string> families(const dc::weights::FamilyReport& r) {
  std::set<std::string> s;
  for (const auto& c : r.components) s.insert(c.family);
  return s;
}
std::string component_detail(const dc::weights::FamilyReport& r, const std::string& family, const std::string& key) {
  for (const auto& c : r.components)
    if (c.family == family)
      for (const auto& d : c.details)
        if (d.compare(0, key.size() + 1, key + "=") == 0) return d.substr(key.size() + 1);
  return "";
}
std::string list(const nlohmann::json& a) {
  std::string s = "[";
  for (std::size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + std::to_string(a[i].get<int64_t>());
  return s + "]";
}
}  // namespace

TEST(Family, EveryFixtureWeightsFileIsRecognised) {
  auto files = dc::test::find_files(dc::test::fixtures_root(), ".weights.safetensors");
  if (auto large = dc::test::large_fixtures_root())
    for (const auto& f : dc::test::find_files(*large, ".weights.safetensors")) files.push_back(f);
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    const auto r = dc::weights::detect_family(dc::weights::keys_of(dc::st::SafetensorsFile::open(f)));
    EXPECT_TRUE(r.recognised()) << f << ": " << r.headline;
    EXPECT_EQ(r.unrecognised_tensors, 0u) << f;
  }
}

// Manifests name the real release; each must be recognised as the family it documents.
TEST(Family, FullSizeManifestsAreRecognisedAsTheirFamily) {
  const std::map<std::string, std::set<std::string>> expected = {
      {"ddpm_cifar10.keys.json", {"ddpm-unet"}},
      {"ddpm_bedroom.keys.json", {"ddpm-unet"}},
      {"ddpm_church.keys.json", {"ddpm-unet"}},
      {"ldm_cin256_v2.keys.json", {"diffusion-schedule", "compvis-unet", "compvis-vq", "ldm-class-embedder"}},
      {"vq_f4.keys.json", {"compvis-vq"}},
      {"sd15_unet.keys.json", {"diffusers-unet"}},
      {"sd15_vae.keys.json", {"diffusers-vae"}},
      {"sd15_single_file_unet_vae.keys.json", {"diffusion-schedule", "compvis-unet", "compvis-kl"}},
      {"sd15_text_encoder.keys.json", {"hf-clip-text"}},
      {"openclip_vit_g14.keys.json", {"clip-vit"}},
      {"inception_fid.keys.json", {"inception-fid"}},
  };
  int checked = 0;
  for (const auto& f : dc::test::find_files(dc::test::fixtures_root(), ".keys.json")) {
    const auto m = dc::weights::Manifest::load(f);
    const auto r = dc::weights::detect_family(m.keys);
    EXPECT_TRUE(r.recognised()) << f;
    auto it = expected.find(fs::path(f).filename().string());
    if (it == expected.end()) continue;
    EXPECT_EQ(families(r), it->second) << f << ": " << r.headline;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// What the DDPM pattern reads off the shapes equals the config the manifest was built from.
TEST(Family, DdpmConfigReadFromShapesEqualsManifestConfig) {
  int checked = 0;
  for (const auto& f : dc::test::find_files(dc::test::fixtures_root(), ".keys.json")) {
    std::ifstream in(f);
    const auto j = nlohmann::json::parse(in);
    if (!j.contains("config") || !j["config"].contains("ch_mult")) continue;
    const auto r = dc::weights::detect_family(dc::weights::Manifest::load(f).keys);
    const auto& c = j["config"];
    EXPECT_EQ(component_detail(r, "ddpm-unet", "ch"), std::to_string(c["ch"].get<int>())) << f;
    EXPECT_EQ(component_detail(r, "ddpm-unet", "ch_mult"), list(c["ch_mult"])) << f;
    EXPECT_EQ(component_detail(r, "ddpm-unet", "num_res_blocks"), std::to_string(c["num_res_blocks"].get<int>())) << f;
    EXPECT_EQ(component_detail(r, "ddpm-unet", "out_ch"), std::to_string(c["out_ch"].get<int>())) << f;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(Family, UnknownKeysAreSaidToBeUnrecognised) {
  const auto r = dc::weights::detect_family({{"x", {2}, "float32"}, {"eps", {2, 3}, "float32"}});
  EXPECT_FALSE(r.recognised());
  EXPECT_NE(r.headline.find("unrecognised"), std::string::npos);
  EXPECT_EQ(r.unrecognised_tensors, 2u);
}
