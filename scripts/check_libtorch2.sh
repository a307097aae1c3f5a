#!/usr/bin/env bash
# Builds and tests deepcache-bench against LibTorch 2.x on this (Debian 12, CPU) machine: in a
# Debian 13 (trixie) root made with debootstrap, whose libtorch-dev is LibTorch 2.6.
#
#   scripts/check_libtorch2.sh            LibTorch 2.6 (CPU): build with warnings as errors, then
#                                         the whole test suite (scripts/test.sh)
#   scripts/check_libtorch2.sh --cuda     LibTorch 2.6 with CUDA 12.4 (libtorch-cuda-dev,
#                                         nvidia-cuda-toolkit; contrib, non-free): the CUDA build
#                                         compiled and linked, warnings as errors; nothing runs
#                                         (no GPU here)
#   ... --build-only                      build, no tests
#   ... --root-only                       make (or update) the root and its packages, nothing else
#   ... -R REGEX                          build, then only the tests ctest -R REGEX selects
#
# The roots are cached in $DC_LIBTORCH2_DIR (default /var/tmp/dc-libtorch2/{cpu,cuda}): the first
# run makes the root (about a minute, then the packages: 2-3 minutes for the CPU root, 5 with
# the CUDA toolkit) and builds everything; a later run copies the working tree in (tracked and
# untracked files git does not ignore; unchanged files keep their times) and rebuilds only what
# changed. ../shared is mounted read-only at the same place relative to the project, as here.
# Needs root (chroot, mounts), debootstrap and rsync (installed with apt-get when missing).
# Logs: $DC_LIBTORCH2_DIR/<mode>/logs/. Exit code: 0 all passed, 1 a phase failed, 2 bad usage or
# the root could not be made.
# The body is one function, read whole before it runs: editing this file while a check runs (it
# takes minutes) does not change the running check.
main() {
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=cpu RUN=all REGEX=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) MODE=cuda ;;
    --build-only) RUN=build ;;
    --root-only) RUN=root ;;
    -R) shift; REGEX=${1:?"-R needs a regex"}; RUN=regex ;;
    *) echo "check_libtorch2.sh: unknown argument '$1' (expected --cuda, --build-only, --root-only, -R REGEX)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "check_libtorch2.sh: needs root (debootstrap, chroot, mounts): run it with sudo" >&2; exit 2; }
dir=${DC_LIBTORCH2_DIR:-/var/tmp/dc-libtorch2}/$MODE
root=$dir/root
logs=$dir/logs
mkdir -p "$logs"
start=$(date +%s)
phase() { echo "== $* ($(( $(date +%s) - start ))s so far)"; }
fail() { echo "check_libtorch2.sh: $1 failed; log: $2" >&2; tail -n 40 "$2" >&2; exit 1; }

# ---- 1. the root: Debian 13, the project's packages (scripts/setup.sh's own list) ----------------
for tool in debootstrap rsync; do
  command -v $tool >/dev/null || { phase "installing $tool"; apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
# Nothing of this machine may stay mounted in the root when it is removed (rm -rf through a bind
# mount of /dev would delete the host's device nodes): unmount, and refuse if anything is left.
unmount_root() {
  local m
  for m in work/shared dev/pts dev sys proc; do umount -l "$root/$m" 2>/dev/null || true; done
  if grep -q " $root/" /proc/mounts; then
    echo "check_libtorch2.sh: something is still mounted under $root; unmount it first" >&2; exit 2
  fi
}
MIRROR=${MIRROR:-$(grep -h -o -E '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}' || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if [ ! -f "$root/.dc-debootstrap-done" ]; then
  phase "making a Debian 13 root in $root (debootstrap from $MIRROR)"
  [ -d "$root" ] && unmount_root
  rm -rf "$root"
  debootstrap --variant=minbase --components=main,contrib,non-free trixie "$root" "$MIRROR" >"$logs/debootstrap.log" 2>&1 \
    || { echo "check_libtorch2.sh: debootstrap failed ($logs/debootstrap.log)" >&2; tail -5 "$logs/debootstrap.log" >&2; exit 2; }
  touch "$root/.dc-debootstrap-done"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mounts=(proc sys dev dev/pts)
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "$root/${mounts[$i]}" 2>/dev/null || true; done
            umount -l "$root/work/shared" 2>/dev/null || true; }
trap cleanup EXIT
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/sys" || mount --rbind /sys "$root/sys"
mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
mountpoint -q "$root/dev/pts" || mount --bind /dev/pts "$root/dev/pts"
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
              LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"; }

# libtorch-cuda-2.6 needs nvidia-cudnn (contrib), whose postinst downloads cuDNN from NVIDIA: that
# fails offline, as here. The package is then marked configured without it, and a link stub of
# libcudnn.so.9 (every cudnn* symbol libtorch_cuda.so imports, as empty functions, under the
# library's own symbol version) lets the CUDA build link; nothing runs against it.
cudnn_offline() {
  [ -f "$root/var/lib/dpkg/info/nvidia-cudnn.postinst" ] || return 1
  echo "nvidia-cudnn could not download cuDNN (offline): configured without it, libcudnn.so.9 is a link stub" | tee -a "$logs/packages.log"
  printf '#!/bin/sh\nexit 0\n' >"$root/var/lib/dpkg/info/nvidia-cudnn.postinst"
  in_root dpkg --configure -a >>"$logs/packages.log" 2>&1 || return 1
  local lib=/usr/lib/x86_64-linux-gnu
  [ -f "$root$lib/libcudnn.so.9" ] && return 0
  in_root bash -c "nm -D --undefined-only $lib/libtorch_cuda.so | awk '/ cudnn/ {split(\$2, s, \"@\"); print \"void \" s[1] \"(void) {}\"}' >/tmp/cudnn_stub.c \
    && echo 'libcudnn.so.9 { global: *; };' >/tmp/cudnn_stub.map \
    && gcc -shared -fPIC -Wl,-soname,libcudnn.so.9 -Wl,--version-script=/tmp/cudnn_stub.map -o $lib/libcudnn.so.9 /tmp/cudnn_stub.c" \
    >>"$logs/packages.log" 2>&1
}

if [ "$MODE" = cuda ]; then
  setup_args=(--build-packages-only); torch_pkgs="libtorch-cuda-dev nvidia-cuda-toolkit"
else
  setup_args=(--packages-only); torch_pkgs="libtorch-dev"
fi
stamp="$(sha256sum scripts/setup.sh | cut -c1-16) $MODE"
if [ "$(cat "$root/.dc-packages" 2>/dev/null)" != "$stamp" ]; then
  phase "installing the packages of scripts/setup.sh ${setup_args[*]} with $torch_pkgs"
  mkdir -p "$root/tmp/dc-setup/scripts"
  cp scripts/setup.sh "$root/tmp/dc-setup/scripts/"
  install_packages() { in_root env SETUP_TORCH="$torch_pkgs" bash /tmp/dc-setup/scripts/setup.sh "${setup_args[@]}" >>"$logs/packages.log" 2>&1; }
  : >"$logs/packages.log"
  if ! install_packages; then
    [ "$MODE" = cuda ] && cudnn_offline || fail "installing the packages" "$logs/packages.log"
    install_packages || fail "installing the packages" "$logs/packages.log"
  fi
  echo "$stamp" >"$root/.dc-packages"
fi
echo "LibTorch $(in_root dpkg-query -W -f='${Version}' $(echo "$torch_pkgs" | cut -d' ' -f1)), $(in_root g++ --version | head -1), $(in_root cmake --version | head -1)"

[ "$RUN" = root ] && { phase "root ready"; exit 0; }

# ---- 2. the working tree, copied in (the build folder outside it survives between runs) ----------
# By content (rsync --checksum, no times kept): a changed file gets a new time there, so ninja
# rebuilds what it touches even when it changed before the last build there began.
phase "copying the working tree into the root"
mkdir -p "$root/work/project" "$root/work/shared"
files=$dir/files.list
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | sort -z >"$files"
rsync -rlc --from0 --files-from="$files" ./ "$root/work/project/"
(cd "$root/work/project" && find . -type f -printf '%P\0' | sort -z | comm -z -23 - "$files" | xargs -0 -r rm -f --)  # gone here
if [ -d ../shared ]; then mountpoint -q "$root/work/shared" || mount --bind -o ro ../shared "$root/work/shared"; fi

# ---- 3. build (warnings in our code are errors: the goal is zero on every LibTorch) --------------
phase "configure and build ($MODE)"
build=/work/build
in_root bash -c "cmake -S /work/project -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON -DDC_WERROR=ON" \
  >"$logs/configure.log" 2>&1 || fail "configure" "$logs/configure.log"
grep -E "deepcache-bench:" "$logs/configure.log" || true
in_root bash -c "cmake --build $build --parallel $(nproc)" >"$logs/build.log" 2>&1 || {
  grep -E -m 20 -A6 "error:|warning:" "$logs/build.log" >&2 || true
  fail "build" "$logs/build.log"; }
[ "$RUN" = build ] || [ "$MODE" = cuda ] && { phase "build done"; [ "$MODE" = cuda ] && echo "the CUDA build compiles and links; nothing was run (no GPU here)"; exit 0; }

# ---- 4. tests ---------------------------------------------------------------------------------------
set +e
if [ "$RUN" = regex ]; then
  phase "tests matching $REGEX"
  in_root bash -c "cd /work/project && DEEPCACHE_FIXTURES_LARGE=/work/shared/fixtures/fid/large ctest --test-dir $build --output-on-failure --parallel $(nproc) -R '$REGEX'" \
    2>&1 | tee "$logs/tests.log" | tail -n 30
else
  phase "the whole test suite (scripts/test.sh)"
  in_root bash -c "cd /work/project && BUILD_DIR=$build bash scripts/test.sh" 2>&1 | tee "$logs/tests.log" | tail -n 30
fi
rc=${PIPESTATUS[0]}
phase "done: tests exit $rc"
exit $(( rc == 0 ? 0 : 1 ))
}
main "$@"
exit $?
