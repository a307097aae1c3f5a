#!/usr/bin/env python3
"""Side by side on the CPU (or one GPU): DeepCache's public DDPM code against this project's CLI,
same weights, same settings, one run.

    python3 bench/compare_reference.py --reference PATH/TO/DeepCache/experiments/ddpm \
        [--cli build/deepcache-bench] [--weights W.safetensors] [--steps 20] [--spacing quad] \
        [--n 8] [--batch 8] [--interval 5] [--k 2] [--threads 2] [--repeats 3] [--device cpu]

What runs:
  * the reference: the checkout's own `ddpm.models.diffusion.Model` with
    `ddpm.functions.denoising.generalized_steps` (plain) and `ddpm.models.deepcache_diffusion.Model`
    with `ddpm.functions.deepcache_denoising.generalized_steps` (DeepCache, `--branch k-1`), timed
    exactly as its runner's `sample_fid` times a batch: randn, `sample_image`, the inverse data
    transform (`time.time()`, images not saved);
  * this project: `deepcache-bench sample` with the same weights, sampler (ddim, eta 0), spacing,
    steps, batch, N and k; its printed sampling time covers the same work (noise, model calls,
    the uint8 conversion).
Each measurement is a fresh process (no warm caches carried over); the median of `--repeats` is
reported, with the spread. Threads: torch intra-op `--threads` on both sides, OpenBLAS held to 1
thread on both (DESIGN.md section 8: OpenMP and OpenBLAS threads compete).

Weights: `--weights FILE` (a DDPM CIFAR-10 safetensors with the checkpoint's key names, e.g. from
scripts/convert_ckpt_to_safetensors.py), else the reference Model's own random initialisation
(seed 0) is written to a temporary safetensors that both sides load: the images are noise, the
times are what counts.

The reference code is never copied into this repository: give a checkout of
https://github.com/horseee/DeepCache by path. It is run unmodified; two things are bridged from
outside, and said in the output: its loops call `.to('cuda')` unconditionally (mapped to the
chosen device when that is the CPU), and `deepcache_denoising.py` imports `scipy.stats.shapiro`
without using it (a stand-in module when SciPy is not installed).

Needs Python 3 with PyTorch, NumPy and PyYAML (Debian: python3-torch python3-yaml).
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def fail(msg):
    print(f"compare_reference: error: {msg}", file=sys.stderr)
    sys.exit(2)


def read_safetensors(torch, path):
    """A minimal safetensors reader (F32/F16/BF16), enough for a DDPM checkpoint."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            fail(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            fail(f"{path}: header of {n} bytes is not plausible")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    kinds = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        if e["dtype"] == "BF16":
            a = np.frombuffer(data[b:end], dtype=np.int16).copy()
            t = torch.from_numpy(a).view(torch.bfloat16).float()
        elif e["dtype"] in kinds:
            t = torch.from_numpy(np.frombuffer(data[b:end], dtype=kinds[e["dtype"]]).copy()).float()
        else:
            fail(f"{path}: tensor {name} has dtype {e['dtype']}, not a float")
        out[name] = t.reshape(e["shape"])
    return out


def namespace(d):
    ns = argparse.Namespace()
    for k, v in d.items():
        setattr(ns, k, namespace(v) if isinstance(v, dict) else v)
    return ns


def reference_config(reference):
    import yaml
    path = os.path.join(reference, "configs", "cifar10.yml")
    if not os.path.isfile(path):
        fail(f"--reference {reference}: {path} not found (give the checkout's experiments/ddpm folder)")
    with open(path) as f:
        return namespace(yaml.safe_load(f))


def import_reference(reference, device):
    """Puts the checkout on sys.path and bridges the two things it needs from outside."""
    import types
    import torch
    notes = []
    sys.path.insert(0, os.path.abspath(reference))
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        scipy = types.ModuleType("scipy")
        stats = types.ModuleType("scipy.stats")
        stats.shapiro = None  # imported by deepcache_denoising.py, never called
        scipy.stats = stats
        sys.modules["scipy"] = scipy
        sys.modules["scipy.stats"] = stats
        notes.append("scipy.stats stand-in (deepcache_denoising.py imports shapiro, never calls it)")
    if device == "cpu":
        original = torch.Tensor.to

        def to(self, *args, **kwargs):
            args = tuple("cpu" if a == "cuda" else a for a in args)
            if kwargs.get("device") == "cuda":
                kwargs["device"] = "cpu"
            return original(self, *args, **kwargs)

        torch.Tensor.to = to
        notes.append(".to('cuda') in the reference's loops mapped to the CPU")
    return notes


def reference_worker(args):
    """One measurement of the reference in this process; prints one JSON line."""
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    notes = import_reference(args.reference, args.device)
    config = reference_config(args.reference)
    cache = args.interval > 1 or args.k is not None
    if cache:
        from ddpm.models.deepcache_diffusion import Model
        from ddpm.functions.deepcache_denoising import generalized_steps
    else:
        from ddpm.models.diffusion import Model
        from ddpm.functions.denoising import generalized_steps
    model = Model(config)
    model.load_state_dict(read_safetensors(torch, args.weights), strict=True)
    model.to(args.device).eval()
    # The runner's betas (linear, float64 numpy -> float32 tensor) and its sample_image sequence.
    d = config.diffusion
    betas = torch.from_numpy(np.linspace(d.beta_start, d.beta_end, d.num_diffusion_timesteps,
                                         dtype=np.float64)).float().to(args.device)
    T = d.num_diffusion_timesteps
    if args.spacing == "uniform":
        seq = range(0, T, T // args.steps)
    else:
        seq = [int(s) for s in list(np.linspace(0, np.sqrt(T * 0.8), args.steps) ** 2)]
    torch.manual_seed(1234)
    seconds = 0.0
    done = 0
    with torch.no_grad():
        while done < args.n:
            b = min(args.batch, args.n - done)
            start = time.time()
            x = torch.randn(b, config.data.channels, config.data.image_size, config.data.image_size,
                            device=args.device)
            if cache:
                xs = generalized_steps(x, seq, model, betas, timesteps=args.steps,
                                       cache_interval=args.interval, non_uniform=False, pow=None,
                                       center=None, branch=args.k - 1, eta=0.0)
            else:
                xs = generalized_steps(x, seq, model, betas, eta=0.0)
            x = torch.clamp((xs[0][-1] + 1.0) / 2.0, 0.0, 1.0)  # inverse_data_transform (rescaled)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds += time.time() - start
            done += b
    print(json.dumps({"seconds": seconds, "images": done, "notes": notes,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"  # the configuration common/malloc_config.cpp compiles in
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def child_env(threads, allocator="shipped", python=False):
    """--allocator shipped: each side with the allocator it ships with (the reference: Python's,
    i.e. glibc's malloc with its defaults; this project: jemalloc, linked in). jemalloc: both
    sides under Debian's jemalloc with the same settings (the reference preloads it)."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    for k in ("LD_PRELOAD", "MALLOC_CONF", "GLIBC_TUNABLES"):
        env.pop(k, None)
    if allocator == "jemalloc":
        env["MALLOC_CONF"] = JEMALLOC_CONF
        if python:
            env["LD_PRELOAD"] = JEMALLOC
    return env


def run_reference(args, cache):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--reference", args.reference,
           "--weights", args.weights, "--steps", str(args.steps), "--spacing", args.spacing,
           "--n", str(args.n), "--batch", str(args.batch), "--threads", str(args.threads),
           "--device", args.device]
    if cache:
        cmd += ["--interval", str(args.interval), "--k", str(args.k)]
    else:
        cmd += ["--interval", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args.threads, args.allocator, python=True))
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        fail(f"the reference failed (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:] or p.stdout[-300:]}")
    return json.loads(lines[-1])


def run_cli(args, cache):
    cmd = [args.cli, "sample", "--model", "ddpm", "--preset", "cifar10", "--weights", args.weights,
           "--sampler", "ddim", "--eta", "0", "--steps", str(args.steps), "--spacing", args.spacing,
           "--n", str(args.n), "--batch", str(args.batch), "--device", args.device,
           "--out", os.path.join(args.tmp, "grid.png")]
    if cache:
        cmd += ["--cache-k", str(args.k), "--interval", str(args.interval)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args.threads, args.allocator))
    m = re.search(r"^time\s+([0-9.]+) s for (\d+) images", p.stdout, re.M)
    if p.returncode != 0 or not m:
        fail(f"{args.cli} sample failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}")
    return {"seconds": float(m.group(1)), "images": int(m.group(2))}


def mac_bounds(args):
    """(paper-counted MAC speedup, every-MAC bound) of N = --interval, k = --k over --steps calls,
    as `deepcache-bench macs` prints them (uniform full steps, as `sample` uses)."""
    cmd = [args.cli, "macs", "--model", "ddpm", "--preset", "cifar10", "--steps", str(args.steps),
           "--interval", str(args.interval)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) == 7 and f[0] == str(args.k) and f[4].endswith("x") and f[6].endswith("x"):
            return float(f[4][:-1]), float(f[6][:-1])
    fail(f"{' '.join(cmd)}: no row for k = {args.k} in its output")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True,
                    help="the DeepCache checkout's experiments/ddpm folder")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "deepcache-bench"))
    ap.add_argument("--weights", default="")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--spacing", choices=["quad", "uniform"], default="quad")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--k", type=int, default=2, help="this project's k (the reference's --branch k-1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--allocator", choices=["shipped", "jemalloc"], default="shipped",
                    help="shipped: each side's own (the reference: glibc malloc; ours: jemalloc, linked in); "
                         "jemalloc: both under Debian's jemalloc, decays off (the reference preloads it)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return reference_worker(args)
    if not os.path.isdir(os.path.join(args.reference, "ddpm", "models")):
        fail(f"--reference {args.reference}: no ddpm/models folder (give DeepCache's experiments/ddpm)")
    if not (os.path.isfile(args.cli) and os.access(args.cli, os.X_OK)):
        fail(f"--cli {args.cli}: not an executable (build the project first)")
    if args.allocator == "jemalloc" and not os.path.isfile(JEMALLOC):
        fail(f"--allocator jemalloc: {JEMALLOC} not found (Debian: libjemalloc2)")
    if args.k < 1:
        fail(f"--k {args.k}: the reference's branch is k-1, so k >= 1")
    if args.n < 1 or args.batch < 1 or args.steps < 1 or args.repeats < 1 or args.interval < 2:
        fail("--n, --batch, --steps and --repeats must be >= 1 and --interval >= 2")
    with tempfile.TemporaryDirectory(prefix="dc-compare-") as tmp:
        args.tmp = tmp
        if not args.weights:
            import torch
            sys.path.insert(0, os.path.join(ROOT, "scripts"))
            from convert_ckpt_to_safetensors import write_safetensors
            import_reference(args.reference, "none")
            from ddpm.models.diffusion import Model
            torch.manual_seed(0)
            model = Model(reference_config(args.reference))
            args.weights = os.path.join(tmp, "random_cifar10.safetensors")
            write_safetensors(torch, args.weights, model.state_dict(), {"note": "random init, seed 0"})
            print(f"weights     the reference Model's random initialisation (seed 0): {args.weights}")
        elif not os.path.isfile(args.weights):
            fail(f"--weights {args.weights}: no such file")
        print(f"settings    DDIM eta 0, {args.steps} steps ({args.spacing}), {args.n} images in batches of "
              f"{args.batch}, DeepCache N={args.interval} k={args.k} (reference --branch {args.k - 1}), "
              f"device {args.device}, torch threads {args.threads}, OpenBLAS 1 thread, "
              f"median of {args.repeats} fresh processes; allocator: "
              + ("each side's own (reference: glibc malloc, defaults; deepcache-bench: jemalloc, linked in)"
                 if args.allocator == "shipped" else f"jemalloc on both sides ({JEMALLOC_CONF})"))
        rows = []
        notes = set()
        for cache in (False, True):
            ref, ours = [], []
            for _ in range(args.repeats):  # interleaved: drift of the machine hits both sides alike
                r = run_reference(args, cache)
                notes.update(r["notes"])
                ref.append(r["images"] / r["seconds"])
                o = run_cli(args, cache)
                ours.append(o["images"] / o["seconds"])
            rows.append(("DeepCache" if cache else "plain", ref, ours))
        for n in sorted(notes):
            print(f"bridged     {n}")
        print()
        print("| mode | reference images/s | deepcache-bench images/s | ratio (ours / reference) |")
        print("|---|---|---|---|")
        for name, ref, ours in rows:
            def cell(v):
                return f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
            ratio = statistics.median(ours) / statistics.median(ref)
            print(f"| {name} | {cell(ref)} | {cell(ours)} | {ratio:.2f}x |")
        plain_ref, plain_ours = (statistics.median(v) for v in rows[0][1:])
        dc_ref, dc_ours = (statistics.median(v) for v in rows[1][1:])
        bound = mac_bounds(args)
        print(f"\nDeepCache speed-up within each: reference {dc_ref / plain_ref:.2f}x, "
              f"deepcache-bench {dc_ours / plain_ours:.2f}x; MACs allow {bound[0]:.2f}x as the paper counts them, "
              f"{bound[1]:.2f}x counting every multiply-accumulate (the bound a compute-bound timing stays under)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
