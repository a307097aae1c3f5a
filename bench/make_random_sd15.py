#!/usr/bin/python3
"""Random-initialised Stable Diffusion v1.5 weights as ONE safetensors file in the layout of the
released single file (runwayml v1-5-pruned-emaonly.safetensors, CompVis/LDM names):

  model.diffusion_model.*                 UNet            (686 tensors)
  first_stage_model.*                     KL-f8 VAE       (248 tensors)
  cond_stage_model.transformer.text_model.*  CLIP ViT-L/14 text encoder, transformers names (197 tensors,
                                          position_ids included, int64 as in the real file)
  betas, alphas_cumprod, ... (12)         the DDPM schedule buffers LatentDiffusion registers

Both loaders read this layout as it is, so one file serves both sides of bench/compare_sdcpp.sh:
  * deepcache-bench (models/registry.cpp, sd_family(), f.load: a file, not a folder, is read with
    select_prefix "model.diffusion_model." / "first_stage_model." / "cond_stage_model.transformer."
    and load_strict; position_ids ignored, the schedule buffers outside every prefix);
  * stable-diffusion.cpp (src/model_loader.cpp ModelLoader::get_sd_version: SD1 from
    cond_stage_model.transformer.text_model.embeddings.token_embedding.weight with 768 columns and
    model.diffusion_model.middle_block.1.*; the CompVis names are its internal names, the schedule
    buffers and position_ids are in its unused_tensors list).

Names and shapes come from the key manifests of the shared fixtures, never from this file:
  sd15/sd15_single_file_unet_vae.keys.json  (UNet + VAE + schedule buffers, CompVis names)
  clip/sd15_text_encoder.keys.json          (text encoder, transformers names; written under
                                             the prefix cond_stage_model.transformer.)

Values: every tensor from its own numpy PCG64 stream seeded with (seed, crc32(name)), so a value
depends only on the seed and the tensor's name. Conv/linear/embedding weights and all biases
~ N(0, std); the 1-D weights (all of them GroupNorm/LayerNorm scales in SD1.5) ~ 1 + N(0, std), so
the normalised activations keep unit scale (no shrinking towards denormals, which would distort CPU
timings); the schedule buffers are the exact scaled-linear schedule (0.00085, 0.012, 1000 steps),
computed in float64 as CompVis register_schedule does and stored as float32.

dtype: fp32 (default; 4.27 GB; both programs then compute in fp32) or fp16 (2.13 GB; the norm,
schedule and position tensors are written at the dtype the manifest gives: the schedule buffers
float32, position_ids int64, everything else float16). deepcache-bench converts fp16 to its fp32
module at load; stable-diffusion.cpp keeps the file's type unless given --type f32.

  /usr/bin/python3 bench/make_random_sd15.py OUT.safetensors [--dtype fp32|fp16] [--seed 0] [--std 0.02]
  /usr/bin/python3 bench/make_random_sd15.py OUT.safetensors --layout-only   # header + sparse hole: names and
                                     shapes only, instant, no disk blocks (for `deepcache-bench inspect`)
  --parts unet_vae_schedule,text_encoder (default both): write a subset (checks against one manifest)
  --limit N: write only the first N tensors (a smoke test of the writer; not loadable)
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.environ.get("DEEPCACHE_FIXTURES", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "fixtures")))
UNET_VAE_MANIFEST = "sd15/sd15_single_file_unet_vae.keys.json"
TEXT_MANIFEST = "clip/sd15_text_encoder.keys.json"
TEXT_PREFIX = "cond_stage_model.transformer."
SCHEDULE = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
            "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"]
ST_DTYPE = {"float32": ("F32", np.float32), "float16": ("F16", np.float16), "int64": ("I64", np.int64)}


def load_manifest(path):
    with open(path) as f:
        m = json.load(f)
    keys = [(k[0], [int(x) for x in k[1]], k[2]) for k in m["keys"]]
    names = [k[0] for k in keys]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: duplicate key names")
    return m, keys


def schedule_buffers(n=1000, start=0.00085, end=0.012):
    """CompVis ldm/models/diffusion/ddpm.py register_schedule, beta_schedule 'linear', v_posterior 0."""
    betas = np.linspace(start ** 0.5, end ** 0.5, n, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    out = {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac), "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac), "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1), "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


def plan_tensors(fixtures, parts, dtype):
    """[(name, shape, manifest dtype, file dtype)] in file order; checks the manifests' invariants."""
    plan = []
    if "unet_vae_schedule" in parts:
        m, keys = load_manifest(os.path.join(fixtures, UNET_VAE_MANIFEST))
        non_model = set(m.get("non_model_keys", []))
        if non_model != set(SCHEDULE):
            sys.exit(f"{UNET_VAE_MANIFEST}: non_model_keys {sorted(non_model)} are not the 12 schedule buffers this script computes")
        n_unet = sum(1 for k in keys if k[0].startswith("model.diffusion_model."))
        n_vae = sum(1 for k in keys if k[0].startswith("first_stage_model."))
        if (n_unet, n_vae, len(keys) - n_unet - n_vae) != (686, 248, 12):
            sys.exit(f"{UNET_VAE_MANIFEST}: expected 686 UNet + 248 VAE + 12 schedule keys, found {n_unet} + {n_vae} + {len(keys) - n_unet - n_vae}")
        params = sum(int(np.prod(s)) for n, s, d in keys)  # the manifest counts the schedule buffers too
        if "num_params" in m and params != m["num_params"]:
            sys.exit(f"{UNET_VAE_MANIFEST}: shapes add up to {params} parameters, the manifest states {m['num_params']}")
        for n, s, d in keys:
            plan.append((n, s, d, d if n in non_model else dtype))
    if "text_encoder" in parts:
        m, keys = load_manifest(os.path.join(fixtures, TEXT_MANIFEST))
        if len(keys) != 197 or keys[0][0] != "text_model.embeddings.position_ids":
            sys.exit(f"{TEXT_MANIFEST}: expected 197 keys starting with text_model.embeddings.position_ids")
        for n, s, d in keys:
            plan.append((TEXT_PREFIX + n, s, d, d if d == "int64" else dtype))
    return plan


def value_of(name, shape, file_dtype, seed, std, schedule):
    np_dtype = ST_DTYPE[file_dtype][1]
    if name in schedule:
        v = schedule[name]
    elif name.endswith("position_ids"):
        v = np.arange(int(np.prod(shape)), dtype=np.int64)
    else:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())])))
        v = rng.standard_normal(int(np.prod(shape)), dtype=np.float32)
        v *= np.float32(std)
        if name.endswith(".weight") and len(shape) == 1:  # GroupNorm / LayerNorm scale
            v += np.float32(1.0)
    v = np.ascontiguousarray(v, dtype=np_dtype).reshape(shape)
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        raise RuntimeError(f"{name}: non-finite values")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES, help=f"shared fixtures folder (default {DEFAULT_FIXTURES})")
    ap.add_argument("--parts", default="unet_vae_schedule,text_encoder")
    ap.add_argument("--layout-only", action="store_true", help="header and a sparse hole of the right size: names/shapes only")
    ap.add_argument("--limit", type=int, default=0, help="only the first N tensors (writer smoke test)")
    a = ap.parse_args()

    parts = set(a.parts.split(","))
    if not parts <= {"unet_vae_schedule", "text_encoder"}:
        sys.exit(f"--parts: unknown part in {a.parts}")
    dtype = {"fp32": "float32", "fp16": "float16"}[a.dtype]
    plan = plan_tensors(a.fixtures, parts, dtype)
    if a.limit:
        plan = plan[: a.limit]

    header, offset = {}, 0
    for name, shape, _, fdt in plan:
        nbytes = int(np.prod(shape)) * np.dtype(ST_DTYPE[fdt][1]).itemsize
        header[name] = {"dtype": ST_DTYPE[fdt][0], "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt", "generator": "deepcache-bench bench/make_random_sd15.py",
                              "init": f"seed={a.seed} std={a.std} dtype={a.dtype} (random, untrained)",
                              "layout": "CompVis single file (v1-5-pruned-emaonly) + cond_stage_model.transformer.text_model.*"}
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)  # 8-byte aligned data start, as the reference writer pads
    total = 8 + len(hbytes) + offset

    tmp = a.out + ".tmp"
    t0 = time.time()
    schedule = schedule_buffers()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        if a.layout_only:
            f.truncate(total)
        else:
            for i, (name, shape, _, fdt) in enumerate(plan):
                v = value_of(name, shape, fdt, a.seed, a.std, schedule)
                f.write(memoryview(v.reshape(-1)).cast("B"))
                if (i + 1) % 200 == 0:
                    print(f"  {i + 1}/{len(plan)} tensors, {f.tell() / 1e9:.2f} GB, {time.time() - t0:.1f} s", file=sys.stderr)
            if f.tell() != total:
                raise RuntimeError(f"wrote {f.tell()} bytes, expected {total}")
    os.replace(tmp, a.out)
    n_params = sum(int(np.prod(s)) for n, s, d, _ in plan if n not in SCHEDULE and not n.endswith("position_ids"))
    print(f"{a.out}: {len(plan)} tensors, {n_params:,} parameters, {total / 1e9:.2f} GB, {a.dtype}, seed {a.seed}, std {a.std}"
          f"{' (LAYOUT ONLY: sparse, no values)' if a.layout_only else ''}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
