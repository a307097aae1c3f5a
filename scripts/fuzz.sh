#!/usr/bin/env bash
# Fuzzes the parsers of files other people make (libFuzzer, ASan + UBSan; fuzz/):
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
# SECONDS per target (default 30); targets: safetensors prompts tokenizer_encode tokenizer_load idx npz png experiment hdf5
# (default: all). Builds build-fuzz/ with clang-14 (-DDC_FUZZ=ON: no LibTorch), seeds each corpus
# from the repository's own files, runs each target with its dictionary (fuzz/dict/), and prints
# one line per target: executions, coverage, corpus size, crashes. Crash inputs are kept in
# build-fuzz/crashes/ and the exit code is 1 when there are any. The corpora persist in
# build-fuzz/corpus/ (a longer run continues where the last stopped).
# FUZZ_RUNS=N stops each target after N executions instead (the long run: FUZZ_RUNS=1000000 with
# SECONDS as an upper bound).
# Needs clang-14, libclang-rt-14-dev (libFuzzer's runtime): scripts/setup.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors prompts tokenizer_encode tokenizer_load idx npz png experiment hdf5)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
CXX=${FUZZ_CXX:-$(command -v clang++-14 || echo clang++)}  # Debian 12: clang-14; Debian 13: clang (19)
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
mkdir -p "$BUILD"
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" $GEN -DDC_FUZZ=ON -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_C_COMPILER="${CXX/++/}" >"$BUILD/configure.log" 2>&1 \
  || { tail -20 "$BUILD/configure.log"; exit 2; }
cmake --build "$BUILD" >"$BUILD/build.log" 2>&1 || { grep -m 10 -A5 error "$BUILD/build.log"; exit 2; }

seed() {  # target -> fills $BUILD/seeds/<target> from the repository's files
  local t=$1 d=$BUILD/seeds/$1
  rm -rf "$d"; mkdir -p "$d"
  case $t in
    safetensors)
      find tests/fixtures -name '*.safetensors' -size -256k | head -40 | while read -r f; do cp "$f" "$d/"; done ;;
    prompts)
      printf 'a photograph of an astronaut riding a horse\r\nan oil painting\r\n' >"$d/crlf.txt"
      printf '\xef\xbb\xbfa cat\nq\n' >"$d/bom.txt"
      find tests experiments -name '*.txt' -size -64k | head -20 | while read -r f; do cp "$f" "$d/$(echo "$f" | tr / _)"; done ;;
    tokenizer_encode)
      printf "A photo of a cat's toy, on a TABLE!!  123" >"$d/a.txt"
      printf 'caf\xc3\xa9 na\xc3\xafve \xf0\x9f\x98\x80 \xe2\x80\x99s' >"$d/b.txt"
      printf 'the quick brown fox jumps over the lazy dog' >"$d/c.txt" ;;
    idx)
      python3 - "$d" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def idx(shape, n=None):
    body = bytes((i * 7) % 256 for i in range(n if n is not None else __import__("math").prod(shape)))
    return b"\0\0\x08" + bytes([len(shape)]) + b"".join(struct.pack(">I", s) for s in shape) + body
open(f"{d}/labels.idx", "wb").write(idx([10]))
open(f"{d}/images.idx", "wb").write(idx([2, 28, 28]))
open(f"{d}/images.idx.gz", "wb").write(gzip.compress(idx([3, 4, 5])))
open(f"{d}/short.idx", "wb").write(idx([4, 4], 10))
PY
      ;;
    npz)
      find tests/fixtures -name '*.npz' -size -256k | head -20 | while read -r f; do cp "$f" "$d/$(echo "$f" | tr / _)"; done
      python3 - "$d" <<'PY'
import struct, sys, zipfile
d = sys.argv[1]
def npy(descr, shape, item, fortran=False, major=1):  # numpy/lib/format.py's layout, without numpy
    dims = "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, dims)
    pre = 10 if major == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    n = 1
    for s in shape: n *= s
    head = b"\x93NUMPY" + bytes([major, 0]) + (struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h)))
    return head + h.encode() + bytes((i * 13) % 256 for i in range(n * item))
arrays = {"mu": npy("<f8", [4], 8), "sigma": npy("<f8", [4, 4], 8), "f": npy("<f4", [2, 3], 4, True),
          "b": npy("|b1", [5], 1), "h": npy("<f2", [3], 2, major=2), "s": npy("<i8", [], 8)}
for name, mode in (("stored.npz", zipfile.ZIP_STORED), ("deflated.npz", zipfile.ZIP_DEFLATED)):
    with zipfile.ZipFile(f"{d}/{name}", "w", mode) as z:
        for k, v in arrays.items():
            z.writestr(k + ".npy", v)
open(f"{d}/plain.npy", "wb").write(arrays["sigma"])
PY
      ;;
    experiment)
      for f in experiments/*.yaml configs/*/*.yaml; do cp "$f" "$d/$(echo "$f" | tr / _)"; done ;;
    png)
      find tests/fixtures docs -name '*.png' -size -32k | head -20 | while read -r f; do cp "$f" "$d/$(echo "$f" | tr / _)"; done
      python3 - "$d" <<'PY'
import struct, sys, zlib
d = sys.argv[1]
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
def png(w, h, depth, colour, interlace=0, extra=b""):  # filter 0 rows, without an encoder library
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = (w * ch * depth + 7) // 8
    raw = b"".join(b"\0" + bytes((x * 31 + y * 7) % 256 for x in range(row)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)) + extra
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(f"{d}/grey8.png", "wb").write(png(5, 4, 8, 0))
open(f"{d}/rgb8.png", "wb").write(png(4, 3, 8, 2))
open(f"{d}/rgba16.png", "wb").write(png(3, 3, 16, 6))
open(f"{d}/palette.png", "wb").write(png(4, 4, 8, 3, extra=chunk(b"PLTE", bytes(range(48))) + chunk(b"tRNS", b"\x80")))
open(f"{d}/grey1.png", "wb").write(png(9, 2, 1, 0, extra=chunk(b"gAMA", struct.pack(">I", 45455))))
PY
      ;;
    hdf5)
      # Results files as `run` writes them (the CLI of the main build, when there is one: CI's
      # set-up builds it), and the training log of the quick start's model (another schema).
      if [ -x build/deepcache-bench ]; then
        printf 'experiment: seed\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n  sampler: {name: ddim, steps: 3}\n  samples: {n: 2, batch: 2, save_images: true}\n  similarity: {enabled: true, samples: 2}\nsweep: {cache.k: [1]}\n' >"$d/seed.yaml"
        build/deepcache-bench run "$d/seed.yaml" --results "$d/results.h5" >/dev/null 2>&1 || true
        rm -f "$d/seed.yaml" "$d"/*.png "$d"/*.lock
      fi
      cp weights/fmnist/classifier.train.h5 "$d/" ;;
    tokenizer_load)
      python3 - "$d/tiny.txt" <<'PY'
import json, sys
# A small valid CLIP-style vocabulary: the 256 byte symbols (+ </w>), two merges, the specials.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
syms = [chr(c) for c in cs]
vocab = syms + [s + "</w>" for s in syms] + ["ab", "ab</w>", "<|startoftext|>", "<|endoftext|>"]
merges = "#version: 0.2\na b\na b</w>\n"
open(sys.argv[1], "w", encoding="utf-8").write(json.dumps({v: i for i, v in enumerate(vocab)}) + "\n====\n" + merges)
PY
      ;;
  esac
}

# libhdf5 1.10 keeps small allocations on some error paths of damaged files: not ours to report
# (fuzz/lsan.supp names the library only; a leak of our code is still one).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}
status=0
printf '%-18s %12s %8s %8s %8s\n' target executions cov corpus crashes
for t in "${TARGETS[@]}"; do
  bin=$BUILD/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz.sh: unknown target '$t' (no $bin)" >&2; exit 2; }
  seed "$t"
  # Inputs that once crashed this target run first (tests/fuzz_regressions/, also a unit test).
  [ -d "tests/fuzz_regressions/$t" ] && cp tests/fuzz_regressions/"$t"/* "$BUILD/seeds/$t/"
  mkdir -p "$BUILD/corpus/$t" "$BUILD/crashes"
  maxlen=65536
  [ "$t" = tokenizer_encode ] && maxlen=4096
  log=$BUILD/fuzz_$t.log
  runs=()
  [ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")
  "$bin" "$BUILD/corpus/$t" "$BUILD/seeds/$t" -max_total_time="$SECS" -max_len=$maxlen -timeout=10 -rss_limit_mb=4096 \
    -dict="fuzz/dict/$t.dict" -artifact_prefix="$BUILD/crashes/$t-" "${runs[@]}" -print_final_stats=1 >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  corpus=$(find "$BUILD/corpus/$t" -type f | wc -l)
  crashes=$(find "$BUILD/crashes" -name "$t-*" -type f | wc -l)
  printf '%-18s %12s %8s %8s %8s\n' "$t" "${execs:-0}" "${cov:-0}" "$corpus" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    status=1
    grep -m 5 -E "ERROR|SUMMARY|runtime error" "$log" | sed "s/^/  $t: /" || true
  fi
done
exit $status
