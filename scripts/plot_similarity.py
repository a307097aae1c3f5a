#!/usr/bin/env python3
"""Publication heatmaps of the similarity maps in a deepcache-bench results file (paper Figure 2).

    python3 scripts/plot_similarity.py RESULTS.h5 [--run RUN_ID] [--blocks up.0.block.2 ...] [--out DIR]

Needs h5py and matplotlib (Debian: apt-get install python3-h5py python3-matplotlib). One PNG (and
PDF) per run and block: cosine similarity between the block's output at every pair of denoising
steps, step index on both axes (0 = the noisiest call).
"""
import argparse
import os
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--run", action="append", default=[], help="run id (prefix); default: every run with maps")
    ap.add_argument("--blocks", nargs="*", default=[], help="blocks to plot; default: all")
    ap.add_argument("--out", default="", help="output folder (default: next to the results)")
    args = ap.parse_args(argv)
    try:
        import h5py
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit(f"error: {e.name} is needed (Debian: apt-get install python3-h5py python3-matplotlib)")
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    os.makedirs(out, exist_ok=True)
    written = 0
    with h5py.File(args.results, "r") as f:
        if "runs" not in f:
            raise SystemExit(f"error: {args.results}: no /runs group (not a deepcache-bench results file?)")
        for run_id, g in f["runs"].items():
            if args.run and not any(run_id.startswith(r) for r in args.run):
                continue
            if "similarity" not in g:
                continue
            for block, ds in g["similarity"].items():
                if block.endswith(".fraction") or (args.blocks and block not in args.blocks):
                    continue
                m = ds[()]
                fig, ax = plt.subplots(figsize=(4.2, 3.6))
                im = ax.imshow(m, cmap="viridis", vmin=m.min(), vmax=1.0, origin="upper")
                ax.set_xlabel("step")
                ax.set_ylabel("step")
                ax.set_title(f"{block} ({g.attrs.get('name', run_id)})", fontsize=8)
                fig.colorbar(im, ax=ax, label="cosine similarity")
                fig.tight_layout()
                base = os.path.join(out, f"similarity_{run_id}_{block}")
                fig.savefig(base + ".png", dpi=150)
                fig.savefig(base + ".pdf")
                plt.close(fig)
                written += 1
                print(base + ".png")
    if written == 0:
        print("no similarity maps found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
