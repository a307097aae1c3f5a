#!/usr/bin/env python3
"""One table from what scripts/gpu_check.sh wrote into OUT (standard library only):

    python3 scripts/gpu_table.py OUT > OUT/table.md

  * OUT/bench_unet_<dtype>.json (dc_bench BM_UNetFullOverPartial, Google Benchmark JSON): per
    family, batch and k: full and partial ms, time ratio, MAC ratio, and the uniform-N=5 speedup
    each implies, 1 / (1/N + (1 - 1/N) r);
  * OUT/e2e_<name>.<dtype>.log (`deepcache-bench sample`): seconds per image plain and with
    DeepCache, the end-to-end speedup and the bound from the MACs the log prints;
  * OUT/quickstart_<dtype>.md (`report`): the quick start's FID-FMNIST per dtype.
Missing pieces are left out (a step that failed or timed out), never invented.
"""
import glob
import json
import os
import re
import sys

N = 5


def bound(mac_ratio, n=N):
    """Uniform-N speedup when a partial call costs 1/mac_ratio of a full one."""
    return 1.0 / (1.0 / n + (1.0 - 1.0 / n) / mac_ratio)


def unet_rows(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "bench_unet_*.json"))):
        dtype = os.path.basename(path)[len("bench_unet_"):-len(".json")]
        try:
            data = json.load(open(path))
        except (OSError, ValueError):
            continue
        for b in data.get("benchmarks", []):
            m = re.match(r"BM_UNetFullOverPartial/(\w+)/(\w+)/(\d+)/k(\d+)", b.get("name", ""))
            if not m or "full_ms" not in b:
                continue
            rows.append({"model": f"{m.group(1)}/{m.group(2)}", "batch": int(m.group(3)), "k": int(m.group(4)),
                         "dtype": dtype, "full_ms": b["full_ms"], "partial_ms": b["partial_ms"],
                         "time_ratio": b["time_ratio"], "mac_ratio": b["mac_ratio"]})
    return rows


def read_sample_log(path):
    text = open(path, errors="replace").read()
    t = re.search(r"^time\s+([0-9.]+) s for (\d+) images on (\w+) \(([0-9.]+) s/image", text, re.M)
    macs = re.search(r"^MACs\s+([0-9.]+) G per call on average \(full call ([0-9.]+) G(?:, partial ([0-9.]+) G)?", text, re.M)
    if not t:
        return None
    return {"s_per_image": float(t.group(4)), "images": int(t.group(2)),
            "macs_avg": float(macs.group(1)) if macs else None, "macs_full": float(macs.group(2)) if macs else None}


def e2e_rows(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "e2e_*_plain*.log"))):
        base = os.path.basename(path)[len("e2e_"):-len(".log")]
        name, dtype = base.rsplit(".", 1)
        cached_path = os.path.join(out, f"e2e_{name.replace('_plain', '_n5')}.{dtype}.log")
        plain = read_sample_log(path)
        cached = read_sample_log(cached_path) if os.path.exists(cached_path) else None
        if not plain:
            continue
        row = {"run": name.replace("_plain", ""), "dtype": dtype, "plain": plain["s_per_image"],
               "images": plain["images"], "cached": None, "speedup": None, "bound": None}
        if cached:
            row["cached"] = cached["s_per_image"]
            row["speedup"] = plain["s_per_image"] / cached["s_per_image"]
            if cached["macs_avg"] and plain["macs_full"]:
                row["bound"] = plain["macs_full"] / cached["macs_avg"]  # MACs per image, plain over DeepCache
        rows.append(row)
    return rows


def fid_rows(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "quickstart_*.md"))):
        dtype = os.path.basename(path)[len("quickstart_"):-len(".md")]
        lines = [l for l in open(path, errors="replace") if l.startswith("|")]
        if len(lines) < 3:
            continue
        head = [c.strip() for c in lines[0].strip().strip("|").split("|")]
        if "fid_fmnist" not in head:
            continue
        col, sp = head.index("fid_fmnist"), head.index("s/image") if "s/image" in head else None
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append({"dtype": dtype, "run": cells[0], "role": cells[1], "fid": cells[col],
                         "s_per_image": cells[sp] if sp is not None else "-"})
    return rows


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: gpu_table.py OUT_DIR (the folder scripts/gpu_check.sh wrote)")
    out = sys.argv[1]
    card = open(os.path.join(out, "gpu.txt")).read().strip().replace("\n", "; ") if os.path.exists(os.path.join(out, "gpu.txt")) else "?"
    print(f"# GPU check\n\nCard and software: {card}\n")
    rows = unet_rows(out)
    if rows:
        print(f"## UNet calls: full vs partial (random weights, full size; bound = uniform N={N} speedup at that ratio)\n")
        print("| model | dtype | batch | k | full ms | partial ms | time ratio | MAC ratio | N=5 from time | N=5 from MACs |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: (r["model"], r["dtype"], r["batch"])):
            print(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['k']} | {r['full_ms']:.2f} | {r['partial_ms']:.2f} | "
                  f"{r['time_ratio']:.2f} | {r['mac_ratio']:.2f} | {bound(r['time_ratio']):.2f}x | {bound(r['mac_ratio']):.2f}x |")
        print()
    rows = e2e_rows(out)
    if rows:
        print(f"## End to end (`sample`, uniform N={N}; s/image over one batch after the untimed warm-up)\n")
        print("| run | dtype | images | plain s/image | DeepCache s/image | speedup | MAC bound | of bound |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            f = lambda v, spec: "-" if v is None else format(v, spec)
            frac = "-" if not (r["speedup"] and r["bound"]) else f"{100 * r['speedup'] / r['bound']:.0f}%"
            print(f"| {r['run']} | {r['dtype']} | {r['images']} | {r['plain']:.4f} | {f(r['cached'], '.4f')} | "
                  f"{f(r['speedup'], '.2f')}x | {f(r['bound'], '.2f')}x | {frac} |")
        print()
    rows = fid_rows(out)
    if rows:
        print("## Quick start (trained Fashion-MNIST DDPM): FID-FMNIST per dtype\n")
        print("| dtype | run | role | FID-FMNIST | s/image |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['dtype']} | {r['run']} | {r['role']} | {r['fid']} | {r['s_per_image']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
