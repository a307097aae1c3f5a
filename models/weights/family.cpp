#include "models/weights/family.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/strings.h"
#include "models/weights/manifest.h"
#include "models/weights/safetensors.h"

namespace dc::weights {

namespace {

using KeyMap = std::map<std::string, const KeyShape*>;


// Prefixes under which real checkpoints nest their parts, longest first.
const std::vector<std::string> kPrefixes = {
    "cond_stage_model.transformer.",  // SD v1 single file: HF CLIPTextModel
    "model.diffusion_model.",         // CompVis LatentDiffusion UNet
    "first_stage_model.",             // CompVis autoencoder
    "cond_stage_model.",              // LDM class embedder, other conditioners
    "model_ema.",                     // LitEma copies (names without dots)
    "text_encoder.", "unet.", "vae.",  // diffusers folders flattened into one file
    "module.",                        // DataParallel
};

const KeyShape* get(const KeyMap& k, const std::string& name) {
  auto it = k.find(name);
  return it == k.end() ? nullptr : it->second;
}
bool has(const KeyMap& k, const std::string& name) { return get(k, name) != nullptr; }
bool has_prefix(const KeyMap& k, const std::string& prefix) {
  auto it = k.lower_bound(prefix);
  return it != k.end() && starts_with(it->first, prefix);
}
int64_t dim(const KeyMap& k, const std::string& name, std::size_t i) {
  const KeyShape* s = get(k, name);
  return (s && s->shape.size() > i) ? s->shape[i] : -1;
}
// Distinct integers n such that some key starts with `before` + n + `after`.
std::vector<int> indices(const KeyMap& k, const std::string& before, const std::string& after = ".") {
  std::set<int> out;
  for (auto it = k.lower_bound(before); it != k.end() && starts_with(it->first, before); ++it) {
    const std::string rest = it->first.substr(before.size());
    std::size_t n = 0;
    while (n < rest.size() && std::isdigit(static_cast<unsigned char>(rest[n]))) ++n;
    if (n > 0 && rest.compare(n, after.size(), after) == 0) out.insert(std::stoi(rest.substr(0, n)));
  }
  return {out.begin(), out.end()};
}
std::string list_str(const std::vector<int64_t>& v) { return st::shape_str(v); }

struct Matcher {
  std::string family;
  std::function<bool(const KeyMap&)> match;
  std::function<std::string(const KeyMap&)> describe;
  std::function<std::vector<std::string>(const KeyMap&)> details;
};

std::vector<std::string> ddpm_details(const KeyMap& k) {
  const int64_t ch = dim(k, "conv_in.weight", 0);
  std::vector<int64_t> mult;
  std::vector<int64_t> attn_levels;
  for (int level : indices(k, "down.")) {
    const int64_t c = dim(k, fmt::format("down.{}.block.0.conv2.weight", level), 0);
    mult.push_back(ch > 0 && c > 0 ? c / ch : -1);
    if (has_prefix(k, fmt::format("down.{}.attn.", level))) attn_levels.push_back(level);
  }
  return {fmt::format("in_channels={}", dim(k, "conv_in.weight", 1)), fmt::format("ch={}", ch),
          fmt::format("ch_mult={}", list_str(mult)),
          fmt::format("num_res_blocks={}", indices(k, "down.0.block.").size()),
          fmt::format("attention at levels {}", list_str(attn_levels)),
          fmt::format("out_ch={}", dim(k, "conv_out.weight", 0)),
          fmt::format("resamp_with_conv={}", has(k, "down.0.downsample.conv.weight") ? "true" : "false")};
}

std::vector<std::string> compvis_unet_details(const KeyMap& k) {
  std::vector<std::string> d = {fmt::format("in_channels={}", dim(k, "input_blocks.0.0.weight", 1)),
                                fmt::format("model_channels={}", dim(k, "input_blocks.0.0.weight", 0)),
                                fmt::format("out_channels={}", dim(k, "out.2.weight", 0)),
                                fmt::format("input_blocks={}", indices(k, "input_blocks.").size()),
                                fmt::format("output_blocks={}", indices(k, "output_blocks.").size())};
  for (const auto& [name, ks] : k) {
    if (name.find("transformer_blocks.0.attn2.to_k.weight") != std::string::npos) {
      d.push_back(fmt::format("context_dim={}", ks->shape.size() > 1 ? ks->shape[1] : -1));
      break;
    }
  }
  if (has(k, "label_emb.weight")) d.push_back(fmt::format("num_classes={}", dim(k, "label_emb.weight", 0)));
  return d;
}

const std::vector<Matcher>& matchers() {
  static const std::vector<Matcher> m = {
      {"ddpm-unet",
       [](const KeyMap& k) { return has(k, "temb.dense.0.weight") && has(k, "conv_in.weight") && has_prefix(k, "down.0.block.0."); },
       [](const KeyMap&) { return std::string("DDPM UNet (ermongroup/ddim models/diffusion.py Model; DeepCache experiments/ddpm)"); },
       ddpm_details},
      {"compvis-unet",
       [](const KeyMap& k) { return has(k, "input_blocks.0.0.weight") && has(k, "out.2.weight") && has_prefix(k, "middle_block."); },
       [](const KeyMap& k) {
         const int64_t in = dim(k, "input_blocks.0.0.weight", 1), mc = dim(k, "input_blocks.0.0.weight", 0);
         std::string guess;
         if (in == 4 && mc == 320) guess = "; layout of Stable Diffusion v1";
         else if (in == 3 && mc == 256) guess = "; layout of LDM-4-G (cin256)";
         return "UNet (CompVis latent-diffusion/stable-diffusion openaimodel.py UNetModel" + guess + ")";
       },
       compvis_unet_details},
      {"diffusers-unet",
       [](const KeyMap& k) { return has(k, "conv_in.weight") && has(k, "time_embedding.linear_1.weight") && has_prefix(k, "down_blocks.0."); },
       [](const KeyMap&) { return std::string("UNet (diffusers UNet2DConditionModel)"); },
       [](const KeyMap& k) {
         std::vector<int64_t> ch;
         for (int b : indices(k, "down_blocks.")) ch.push_back(dim(k, fmt::format("down_blocks.{}.resnets.0.conv2.weight", b), 0));
         return std::vector<std::string>{fmt::format("in_channels={}", dim(k, "conv_in.weight", 1)),
                                         fmt::format("block_out_channels={}", list_str(ch))};
       }},
      {"diffusers-vae",
       [](const KeyMap& k) { return has_prefix(k, "encoder.down_blocks.0.") && has_prefix(k, "decoder.up_blocks.0."); },
       [](const KeyMap&) { return std::string("autoencoder (diffusers AutoencoderKL)"); },
       [](const KeyMap& k) {
         return std::vector<std::string>{fmt::format("latent_channels={}", dim(k, "post_quant_conv.weight", 0))};
       }},
      {"compvis-vq",
       [](const KeyMap& k) { return has_prefix(k, "encoder.down.0.block.0.") && has(k, "quantize.embedding.weight"); },
       [](const KeyMap& k) {
         return std::string("VQ autoencoder (CompVis latent-diffusion ldm/models/autoencoder.py VQModel)") +
                (has_prefix(k, "loss.") ? "; includes training-only loss.* (LPIPS, discriminator)" : "");
       },
       [](const KeyMap& k) {
         return std::vector<std::string>{fmt::format("n_embed={}", dim(k, "quantize.embedding.weight", 0)),
                                         fmt::format("embed_dim={}", dim(k, "quantize.embedding.weight", 1)),
                                         fmt::format("ch={}", dim(k, "encoder.conv_in.weight", 0)),
                                         fmt::format("levels={}", indices(k, "encoder.down.").size())};
       }},
      {"compvis-kl",
       [](const KeyMap& k) { return has_prefix(k, "encoder.down.0.block.0.") && has(k, "quant_conv.weight"); },
       [](const KeyMap& k) {
         return std::string("KL autoencoder (CompVis ldm/models/autoencoder.py AutoencoderKL)") +
                (has_prefix(k, "loss.") ? "; includes training-only loss.*" : "");
       },
       [](const KeyMap& k) {
         return std::vector<std::string>{fmt::format("z_channels={}", dim(k, "post_quant_conv.weight", 1)),
                                         fmt::format("ch={}", dim(k, "encoder.conv_in.weight", 0))};
       }},
      {"hf-clip-text",
       [](const KeyMap& k) { return has(k, "text_model.embeddings.token_embedding.weight") && has_prefix(k, "text_model.encoder.layers.0."); },
       [](const KeyMap&) { return std::string("CLIP text encoder (Hugging Face transformers CLIPTextModel)"); },
       [](const KeyMap& k) {
         return std::vector<std::string>{
             fmt::format("vocab={}", dim(k, "text_model.embeddings.token_embedding.weight", 0)),
             fmt::format("width={}", dim(k, "text_model.embeddings.token_embedding.weight", 1)),
             fmt::format("layers={}", indices(k, "text_model.encoder.layers.").size()),
             fmt::format("context={}", dim(k, "text_model.embeddings.position_embedding.weight", 0))};
       }},
      {"clip-vit",
       [](const KeyMap& k) { return has(k, "visual.conv1.weight") && has_prefix(k, "visual.transformer.resblocks.0."); },
       [](const KeyMap& k) {
         return std::string("CLIP ViT, image and text towers (openai/CLIP and open_clip naming)") +
                (has(k, "token_embedding.weight") ? "" : "; vision tower only");
       },
       [](const KeyMap& k) {
         return std::vector<std::string>{
             fmt::format("vision width={}", dim(k, "visual.conv1.weight", 0)),
             fmt::format("patch={}", dim(k, "visual.conv1.weight", 2)),
             fmt::format("vision layers={}", indices(k, "visual.transformer.resblocks.").size()),
             fmt::format("text width={}", dim(k, "token_embedding.weight", 1)),
             fmt::format("text layers={}", indices(k, "transformer.resblocks.").size()),
             fmt::format("embed_dim={}", dim(k, "text_projection", 1))};
       }},
      {"inception-fid",
       [](const KeyMap& k) { return has(k, "Conv2d_1a_3x3.conv.weight") && has_prefix(k, "Mixed_7c."); },
       [](const KeyMap&) { return std::string("FID InceptionV3 (pytorch-fid pt_inception-2015-12-05)"); },
       [](const KeyMap& k) { return std::vector<std::string>{fmt::format("logits={}", dim(k, "fc.weight", 0))}; }},
      {"ldm-class-embedder",
       [](const KeyMap& k) { return k.size() == 1 && has(k, "embedding.weight"); },
       [](const KeyMap&) { return std::string("class embedder (CompVis ldm/modules/encoders/modules.py ClassEmbedder)"); },
       [](const KeyMap& k) {
         return std::vector<std::string>{fmt::format("n_classes={}", dim(k, "embedding.weight", 0)),
                                         fmt::format("embed_dim={}", dim(k, "embedding.weight", 1))};
       }},
      {"diffusion-schedule",
       [](const KeyMap& k) {
         static const std::set<std::string> names = {
             "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
             "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
             "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
             "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "scale_factor", "model_ema.decay",
             "model_ema.num_updates"};
         if (!has(k, "betas") || !has(k, "alphas_cumprod")) return false;
         for (const auto& [n, _] : k)
           if (!names.count(n)) return false;
         return true;
       },
       [](const KeyMap&) { return std::string("diffusion schedule buffers (CompVis LatentDiffusion.register_schedule)"); },
       [](const KeyMap& k) { return std::vector<std::string>{fmt::format("timesteps={}", dim(k, "betas", 0))}; }},
      {"ema-copy",
       [](const KeyMap& k) { return has(k, "decay") && has(k, "num_updates"); },
       [](const KeyMap&) { return std::string("EMA copy of the model (CompVis LitEma; names without dots)"); },
       [](const KeyMap&) { return std::vector<std::string>{}; }},
  };
  return m;
}

}  // namespace

FamilyReport detect_family(const std::vector<KeyShape>& keys) {
  // 1. Group keys by the longest known prefix.
  std::map<std::string, KeyMap> groups;
  for (const auto& k : keys) {
    std::string prefix;
    for (const auto& p : kPrefixes)
      if (starts_with(k.name, p)) {
        prefix = p;
        break;
      }
    groups[prefix][k.name.substr(prefix.size())] = &k;
  }
  FamilyReport r;
  std::set<std::string> families;
  // 2. Each group is one component when a matcher recognises it.
  for (const auto& [prefix, group] : groups) {
    const Matcher* found = nullptr;
    for (const auto& m : matchers())
      if (m.match(group)) {
        found = &m;
        break;
      }
    std::vector<KeyShape> ks;
    for (const auto& [_, k] : group) ks.push_back(*k);
    if (!found) {
      r.unrecognised_prefixes.push_back(prefix);
      r.unrecognised_tensors += group.size();
      continue;
    }
    FamilyComponent c;
    c.family = found->family;
    c.description = found->describe(group);
    c.prefix = prefix;
    c.tensors = group.size();
    c.elements = count_elements(ks, false);
    c.details = found->details(group);
    families.insert(c.family);
    r.components.push_back(std::move(c));
  }
  // 3. Headline for the combinations real releases ship.
  auto with = [&](const char* f) { return families.count(f) > 0; };
  if (r.components.empty()) r.headline = "unrecognised (no known model family's key pattern)";
  else if (with("compvis-unet") && with("compvis-kl"))
    r.headline = std::string("Stable Diffusion v1 single-file checkpoint (CompVis LatentDiffusion)") +
                 (with("hf-clip-text") ? "" : ", without the text encoder");
  else if (with("compvis-unet") && with("compvis-vq"))
    r.headline = "latent diffusion checkpoint (CompVis LatentDiffusion with VQ first stage, e.g. LDM-4-G cin256)";
  else if (with("compvis-unet") && with("ldm-class-embedder"))
    r.headline = "class-conditional latent diffusion UNet with its class embedder (CompVis LatentDiffusion, LDM-4-G layout), no first stage";
  else if (r.components.size() == 1) r.headline = r.components[0].description;
  else {
    r.headline = "several components:";
    for (const auto& c : r.components) r.headline += " " + c.family;
  }
  return r;
}

}  // namespace dc::weights
