// Stable Diffusion v1 in diffusers' layout, read into the CompVis models (DESIGN.md §3: the names
// inside the model are CompVis's). A diffusers folder's `unet/config.json` and `vae/config.json`
// become OpenAIUNetConfig / AutoencoderConfig, and its tensor names are renamed to the CompVis
// ones at load time, strictly, with the transforms diffusers' convert_from_ckpt.py applies (the VAE
// mid-block attention's 1x1 convs are Linear layers there; the decoder's up blocks are stored in
// the opposite order). The renaming is computed from the model's own parameter names, so it holds
// for any depth or width of SD v1's block layout; tests/test_sd15.cpp checks it against the
// fixtures' full-size map traced through diffusers (sd15_single_file_to_diffusers.map.json).
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>

#include "models/autoencoder.h"
#include "models/openai_unet.h"
#include "models/weights/key_mapping.h"

namespace dc::models {

// diffusers UNet2DConditionModel config -> the CompVis UNet. Accepts SD v1's layout (CrossAttn
// down blocks then plain ones, UNetMidBlock2DCrossAttn, the mirrored up blocks, conv 1x1
// projections, one cross-attention width, `attention_head_dim` = the number of heads, the SD1.5
// trap); anything else is a dc::Error naming `what` and the key.
OpenAIUNetConfig unet_config_from_diffusers(const nlohmann::json& config, const std::string& what);

// The diffusers name of a CompVis UNet parameter (no prefixes), as convert_ldm_unet_checkpoint
// renames it; dc::Error for a name outside the UNet's layout.
std::string diffusers_unet_key(const std::string& compvis_key, const OpenAIUNetConfig& config);

// diffusers AutoencoderKL config -> the CompVis KL autoencoder (double_z, no quantiser).
AutoencoderConfig kl_config_from_diffusers(const nlohmann::json& config, const std::string& what);

// The diffusers name of a CompVis autoencoder parameter and the transform from the CompVis tensor
// to the diffusers one (squeeze_1x1 for the mid-block attention's q, k, v, proj_out weights).
std::pair<std::string, weights::Transform> diffusers_vae_key(const std::string& compvis_key, const AutoencoderConfig& config);

// Load-time mappings (file names -> module names) for every parameter of `module`, which is a
// CompVis UNet (or VAE) under `module_prefix` (e.g. "model.diffusion_model." inside a wrapper).
// The VAE mapping also accepts the legacy attention names of old diffusers files
// (query/key/value/proj_attn for to_q/to_k/to_v/to_out.0).
weights::KeyMapping diffusers_unet_mapping(const torch::nn::Module& module, const OpenAIUNetConfig& config,
                                           const std::string& module_prefix = "");
weights::KeyMapping diffusers_vae_mapping(const torch::nn::Module& module, const AutoencoderConfig& config,
                                          const std::string& module_prefix = "");

}  // namespace dc::models
