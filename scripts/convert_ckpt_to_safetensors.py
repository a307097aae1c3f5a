#!/usr/bin/env python3
"""Convert a pickled PyTorch checkpoint (.ckpt / .pt / .pth / .bin) into a safetensors file that
deepcache-bench reads.

    python3 scripts/convert_ckpt_to_safetensors.py IN.ckpt OUT.safetensors [--key state_dict]
                                                    [--dtype keep|float16|float32] [--unsafe-pickle]

Needs PyTorch for Python (Debian: `apt-get install python3-torch`), nothing else: the safetensors
file is written by this script (format: https://github.com/huggingface/safetensors).

Which dictionary is converted:
  * `--key K` (dotted path, e.g. `state_dict`, `model`) when given;
  * else a Lightning checkpoint's `state_dict` (CompVis LDM / Stable Diffusion .ckpt);
  * else the loaded object itself when it is a flat dict of tensors (ddim-repo converted EMA
    checkpoints, pytorch-fid's Inception, diffusers .bin files).
Non-tensor entries are listed and left out. Keys are kept exactly as they are: key dialects are
mapped by the harness at load time.

By default the file is loaded with `torch.load(weights_only=True)`, which refuses arbitrary
pickled code; `--unsafe-pickle` lifts that for checkpoints you trust that need it.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def select(obj, key):
    if key:
        for part in key.split("."):
            if not isinstance(obj, dict) or part not in obj:
                raise SystemExit(f"error: key '{key}' not found (at '{part}'); top-level keys: "
                                 f"{sorted(obj)[:20] if isinstance(obj, dict) else type(obj).__name__}")
            obj = obj[part]
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    return obj


def tensor_bytes(torch, t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(torch, path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(torch, t)
        header[name] = {"dtype": DTYPES[str(t.dtype).replace("torch.", "")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--key", default="", help="dotted path of the dict to convert (default: auto)")
    ap.add_argument("--dtype", choices=["keep", "float16", "float32"], default="keep",
                    help="convert floating-point tensors (default: keep as stored)")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="allow arbitrary pickled objects (only for files you trust)")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("error: PyTorch for Python is needed (Debian: apt-get install python3-torch)")
    if not os.path.isfile(args.input):
        raise SystemExit(f"error: {args.input}: no such file")
    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=not args.unsafe_pickle)
    except Exception as e:  # noqa: BLE001 - report any unpickling failure in one line
        hint = "" if args.unsafe_pickle else " (if you trust the file, retry with --unsafe-pickle)"
        raise SystemExit(f"error: {args.input}: cannot load: {str(e).splitlines()[0]}{hint}")
    sd = select(obj, args.key)
    if not isinstance(sd, dict):
        raise SystemExit(f"error: {args.input}: the selected object is a {type(sd).__name__}, "
                         "not a dict of tensors; choose one with --key")
    tensors, skipped = {}, []
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and str(v.dtype).replace("torch.", "") in DTYPES:
            if args.dtype != "keep" and v.is_floating_point():
                v = v.to(getattr(torch, args.dtype))
            tensors[str(k)] = v
        else:
            skipped.append(f"{k} ({type(v).__name__})")
    if not tensors:
        raise SystemExit(f"error: {args.input}: no tensors found (keys: {list(sd)[:10]})")
    meta = {"format": "pt", "converted_from": os.path.basename(args.input),
            "source_sha256": sha256(args.input), "converter": "deepcache-bench convert_ckpt_to_safetensors.py"}
    write_safetensors(torch, args.output, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"{args.output}: {len(tensors)} tensors, {n:,} elements"
          + (f"; left out {len(skipped)} non-tensor entries: {', '.join(skipped[:10])}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
