#!/usr/bin/env python3
"""Publication heatmaps of the similarity maps in a deepcache-bench results file (paper Figure 2).

    python3 scripts/plot_similarity.py RESULTS.h5 [--run RUN_ID] [--blocks up.0.block.2 ...] [--out DIR]

Needs h5py and matplotlib (Debian: apt-get install python3-h5py python3-matplotlib). One PNG (and
PDF) per run and tap, plot_similarity_<run>_<tap>.png/.pdf (not the similarity_<run>_<tap>.png that
`deepcache-bench report` writes next to the results): cosine similarity between the tap's output at
every pair of model calls, the model-call index on both axes (0 = the noisiest call). The title
names the run and the tap. Tap names: docs/experiments.md, "Presets and similarity taps".
"""
import argparse
import os
import sys


def text(v):
    """An HDF5 attribute as str: h5py returns fixed-length strings as bytes (numpy.bytes_)."""
    if hasattr(v, "tolist") and not isinstance(v, (bytes, str)):
        v = v.tolist()  # numpy scalars and arrays
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x) for x in v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", errors="replace")
    return str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--run", action="append", default=[], help="run id (prefix); default: every run with maps")
    ap.add_argument("--blocks", nargs="*", default=[], help="taps to plot (names as in similarity/<tap>); default: all")
    ap.add_argument("--out", default="", help="output folder (default: next to the results)")
    args = ap.parse_args(argv)
    try:
        import h5py
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
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
            name = text(g.attrs.get("name", run_id))
            for block, ds in g["similarity"].items():
                if block.endswith(".fraction") or (args.blocks and block not in args.blocks):
                    continue
                m = ds[()]
                fig, ax = plt.subplots(figsize=(4.2, 3.6))
                im = ax.imshow(m, cmap="viridis", vmin=m.min(), vmax=1.0, origin="upper")
                ax.set_xlabel("model call (0 = noisiest)")
                ax.set_ylabel("model call (0 = noisiest)")
                for axis in (ax.xaxis, ax.yaxis):  # call indices are integers
                    axis.set_major_locator(MaxNLocator(integer=True))
                ax.set_title(f"{name} ({run_id})\ntap {block}", fontsize=8)
                fig.colorbar(im, ax=ax, label="cosine similarity")
                fig.tight_layout()
                # Not similarity_<run>_<tap>.png: that is the name of `deepcache-bench report`'s heatmap.
                base = os.path.join(out, f"plot_similarity_{run_id}_{block}")
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
