#!/usr/bin/env bash
# Runs the whole test suite with ctest (building first if needed).
#   DEEPCACHE_FIXTURES        fixture root (default tests/fixtures); every case found there runs
#   DEEPCACHE_FIXTURES_LARGE  large fixtures (FID Inception weights); default ../shared/fixtures/fid/large
#   BUILD_DIR                 build folder (default build)
#   --sanitize                build and run the suite with ASan+UBSan in build-asan/ instead
#   --capped[=avx2]           run the `numeric` tests (label) again as another CPU would: the CPU
#                             libraries' vector ISA capped and one torch thread, as set in
#                             scripts/cpu-caps/lowest.env (default: ATen without AVX, oneDNN SSE4.1,
#                             OpenBLAS Prescott) or avx2.env (docs/experiments.md, "What is reproducible");
#                             CAPPED_SKIP (ctest -E regex, default RunnerMetrics\.) leaves tests out
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
if [ -n "${DEEPCACHE_FIXTURES:-}" ]; then export DEEPCACHE_FIXTURES="$(abs "$DEEPCACHE_FIXTURES")"; fi
if [ -n "${DEEPCACHE_FIXTURES_LARGE:-}" ]; then export DEEPCACHE_FIXTURES_LARGE="$(abs "$DEEPCACHE_FIXTURES_LARGE")"; fi
cd "$(dirname "$0")/.."
if [ -z "${DEEPCACHE_FIXTURES_LARGE:-}" ] && [ -d ../shared/fixtures/fid/large ]; then
  export DEEPCACHE_FIXTURES_LARGE="$(cd ../shared/fixtures/fid/large && pwd)"
fi
JOBS=${JOBS:-$(nproc)}
# $JOBS tests at once, each with LibTorch's threads (one per core): more threads than cores. GNU
# OpenMP's threads spin at each barrier by default and a spinning thread holds the core the other
# test needs; passive waiting sleeps instead. Measured on this 2-core VM, RunnerMetrics.* under
# `ctest -j2`: 111 s spinning, 81 s with OMP_NUM_THREADS=1, 58 s passive. The arithmetic does not
# change (the same threads and kernels); a user's runs (one process) keep the default.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

MODE=plain
case "${1:-}" in
  "") ;;
  --sanitize) MODE=sanitize ;;
  --capped|--capped=lowest|--capped=avx2) MODE=capped
    caps=scripts/cpu-caps/${1#--capped=}.env; [ "$1" = --capped ] && caps=scripts/cpu-caps/lowest.env
    set -a; . "$caps"; set +a ;;
  *) echo "test.sh: unknown option '$1' (expected --sanitize, --capped or --capped=avx2)" >&2; exit 2 ;;
esac

if [ "$MODE" = sanitize ]; then
  BUILD_DIR=${BUILD_DIR:-build-asan}
  # -O0 -g1 (line tables only): full debug info of torch-heavy units made the instrumented build
  # the longest part of CI (a 300 MB CLI), and -O1 with the sanitizers' instrumentation more than
  # doubles the compile time of a torch-heavy unit (148 s against 66 s at -O0 for dc_models'
  # first unity unit here); line tables still give file:line in every report, and the tests spend
  # their time in LibTorch's kernels, which are not recompiled.
  # A unity build (8 sources per unit, as setup.sh's first build): half the compile time.
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1" \
    -DDC_SANITIZE=ON -DDC_BUILD_BENCH=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null
  # LibTorch itself is not instrumented: leaks inside it are not ours to report.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_odr_violation=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # Under the sanitizers: every test that is not labelled `numeric` (parsers, configs, the CLI and
  # its error paths, the results store, resume: where our own memory handling is), and of the
  # `numeric` ones the fixture parity suites that walk our index logic (samplers, trajectories,
  # DeepCache at every branch). The rest of `numeric` spends its time inside LibTorch, which is not
  # instrumented, and runs in the plain and capped passes (CI's time limit). The slowest
  # non-numeric tests repeat covered work (the kill -9 tests and the fault-injection sweep spawn the
  # CLI dozens of times (the faults code runs here in the other Faults.* tests); the
  # journal code runs under the sanitizers in Journal.* and every resume/merge test; shard-invariant
  # sampling; a full-size LDM-4-G `sample`, SD1.5's MAC count and its text-to-image runs that spend their time in LibTorch, ...), and the local
  # Slurm cluster runs in the plain pass. The CLI's bad-input tables (BadInputs.*, the damaged
  # weights of Cli.EachDamagedFile..., 110 CLI processes) exercise parsers that scripts/fuzz.sh runs
  # under ASan + UBSan in-process, millions of inputs each (their in-process unit tests stay here);
  # `inspect` over every fixture file and the MAC counts (Macs.*) spend their time reading tensors
  # and in LibTorch's forward passes; Report.BaselinePerSamplerSetting... samples three sweeps (the
  # report code runs here in Report.TableWithSpeedupsAndHeatmaps). PlotScript.*, ReportHtml.* and
  # ConvertScript.* spend their time in Python (matplotlib, the converter) and Chromium, which are
  # not instrumented; the report and HTML code they drive runs here in ReportStudy.* and Report.*.
  # SANITIZE_ALL=1 runs everything.
  SANITIZE_SKIP=${SANITIZE_SKIP-SlurmCluster|Faults.EveryFileOperation|frechet_d2048|SoakKills|KillNineOnObservedCommits|SamplesDoNotDependOnBatchSizeOrShards|FloatImagesAgreeAcrossBatchSizes|CliSampleLdm|CliSampleSd|SdRun.PromptsNegative|SdRun.ClipScoreInRun|Macs\.|BadInputs\.|Cli.EachDamagedFile|Cli.Inspect|Report.BaselinePerSampler|PlotScript\.|ReportHtml\.|ConvertScript\.}
  SANITIZE_NUMERIC='SamplerCase|SchedulerCase|DdpmTrajectory|LdmTrajectory|LdmUNetCase|Sd15UNetCase|Sd15PipelineCase|VqCase|Samplers\.|Schedules\.|DdpmUNet\.DeepCacheAtEveryReferenceBranch'
  if [ "${SANITIZE_ALL:-}" = 1 ]; then SANITIZE_SKIP=""; fi
else
  SANITIZE_SKIP=""
  BUILD_DIR=${BUILD_DIR:-build}
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON >/dev/null
  fi
fi
cmake --build "$BUILD_DIR" --parallel "$JOBS"
echo "test: fixtures ${DEEPCACHE_FIXTURES:-tests/fixtures}, large fixtures ${DEEPCACHE_FIXTURES_LARGE:-(not set)}"
if [ "$MODE" = capped ]; then
  # RunnerMetrics.* compare in-run metric accumulators (shards, merges) with the same metric code on
  # the whole array in the same process: both sides take the same kernels, so capping the ISA tests
  # nothing there that InceptionCase/InceptionFid/FidPipeline (capped here) do not; they cost 7
  # minutes of CI's 45 (CAPPED_SKIP="" runs them too).
  CAPPED_SKIP=${CAPPED_SKIP-RunnerMetrics\.}
  echo "test: numeric tests with the CPU kernels capped ($caps): $(grep -v '^#' "$caps" | tr '\n' ' ')${CAPPED_SKIP:+, skipping $CAPPED_SKIP}"
  if [ -n "$CAPPED_SKIP" ]; then
    ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$JOBS" -L numeric -E "$CAPPED_SKIP"
  else
    ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$JOBS" -L numeric
  fi
elif [ "$MODE" = sanitize ] && [ -n "${SANITIZE_SKIP:-}" ]; then
  # The same selection as ctest's, run in $JOBS gtest processes (GTEST_SHARD_INDEX) instead of one
  # process per test: an instrumented dc_tests takes ~5 s to start (LibTorch's libraries and
  # static registrations under ASan), which was most of this pass's time (159 tests, 819 s on one
  # core). SANITIZE_PER_TEST=1 runs them through ctest, one process each.
  names() { ctest --test-dir "$BUILD_DIR" -N "$@" | sed -n 's/^ *Test *#[0-9]*: \(.*\)$/\1/p' | sed 's/  *# GetParam.*//'; }
  selected=$( { names -LE numeric -E "$SANITIZE_SKIP"; names -L numeric -R "$SANITIZE_NUMERIC"; } | grep -v '^SlurmCluster' )
  echo "test: under the sanitizers: $(echo "$selected" | wc -l) tests (not labelled numeric, skipping $SANITIZE_SKIP; and the numeric parity suites $SANITIZE_NUMERIC)"
  if [ "${SANITIZE_PER_TEST:-}" = 1 ]; then
    ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$JOBS" -LE numeric -E "$SANITIZE_SKIP"
    ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$JOBS" -L numeric -R "$SANITIZE_NUMERIC"
  else
    filter=$(echo "$selected" | paste -sd: -)
    pids=()
    for ((i = 0; i < JOBS; i++)); do
      GTEST_TOTAL_SHARDS=$JOBS GTEST_SHARD_INDEX=$i "$BUILD_DIR/dc_tests" --gtest_filter="$filter" --gtest_brief=1 \
        --gtest_output="xml:$BUILD_DIR/sanitize-shard-$i.xml" \
        >"$BUILD_DIR/sanitize-shard-$i.log" 2>&1 &
      pids+=($!)
    done
    failed=0
    for ((i = 0; i < JOBS; i++)); do
      if wait "${pids[$i]}"; then
        grep -E '^\[  PASSED  \]' "$BUILD_DIR/sanitize-shard-$i.log" | sed "s/^/test: shard $i: /"
      else
        failed=1
        echo "test: shard $i of the sanitizer pass FAILED ($BUILD_DIR/sanitize-shard-$i.log):"
        grep -E -A3 '^\[  FAILED  \]|ERROR: (Address|Undefined|Leak)Sanitizer|runtime error|SUMMARY' "$BUILD_DIR/sanitize-shard-$i.log" | head -60
        tail -n 20 "$BUILD_DIR/sanitize-shard-$i.log"
      fi
    done
    # The slowest tests under the sanitizers (gtest's XML reports), for choosing SANITIZE_SKIP.
    cat "$BUILD_DIR"/sanitize-shard-*.xml 2>/dev/null | sed -n 's/.*<testcase name="\([^"]*\)".* time="\([0-9.]*\)".* classname="\([^"]*\)".*/\2 \3.\1/p' |
      sort -rn | head -n 8 | awk '{printf "test: slowest under the sanitizers: %6.1f s  %s\n", $1, $2}'
    [ "$failed" = 0 ] || exit 1
  fi
else
  ctest --test-dir "$BUILD_DIR" --output-on-failure --parallel "$JOBS"
fi
