#!/usr/bin/env bash
# The Slurm path against a real Slurm (Debian's slurm-wlm + munge, installed by scripts/setup.sh):
# starts munged, slurmctld and slurmd on localhost as the current user (one node, a generated
# slurm.conf and every file in a temporary folder, torn down afterwards), submits a small sharded
# experiment with the script `plan --slurm` writes, interrupts two running array tasks (a
# `scontrol requeue`, which TERMs the job, and Slurm's pre-emption warning SIGUSR1 to the batch
# shell, which the script forwards), and checks that
#   - both interrupted tasks were requeued and resumed from their journals (nothing made twice),
#   - the dependent merge job (afterok) ran and its file equals the unsharded run of the same
#     experiment bit for bit (images, grid, accumulator states, FID-FMNIST; one machine, same
#     threads and batch layout).
# It fails, never skips, when Slurm is missing: CI must run it (ctest label `slurm`).
#   usage: tests/slurm/test_slurm.sh path/to/deepcache-bench     (KEEP=1 keeps the folder)
set -euo pipefail
CLI=$(readlink -f "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3  # Debian's, with python3-h5py (setup.sh)
for b in slurmctld slurmd munged mungekey sbatch scontrol squeue scancel sinfo; do
  command -v "$b" >/dev/null || { echo "FAIL: $b is not installed (scripts/setup.sh installs slurm-wlm and munge)"; exit 1; }
done
"$PY" -c 'import h5py' 2>/dev/null || { echo "FAIL: $PY lacks h5py (python3-h5py, scripts/setup.sh)"; exit 1; }
T=$(mktemp -d /tmp/dc-slurm.XXXXXX)
log() { echo "[$(date +%T)] $*"; }
cleanup() {
  set +e
  for p in slurmd slurmctld munged; do [ -f "$T/$p.pid" ] && kill "$(cat "$T/$p.pid")" 2>/dev/null; done
  sleep 1
  for p in slurmd slurmctld munged; do [ -f "$T/$p.pid" ] && kill -9 "$(cat "$T/$p.pid")" 2>/dev/null; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # ctest's timeout: the daemons go down with the EXIT trap
fail() {
  echo "FAIL: $*"
  for f in "$T"/slurmctld.log "$T"/slurmd.log "$T"/work/slurm/logs/*; do [ -f "$f" ] && { echo "---- $f"; tail -n 25 "$f"; }; done
  exit 1
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

# ---- the cluster: munge and Slurm daemons on localhost, everything under $T ----
mkdir -p "$T/state" "$T/spool" "$T/work"
mungekey -c -k "$T/munge.key" -b 1024 >/dev/null 2>&1 || dd if=/dev/urandom of="$T/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$T/munge.key"
munged --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" --log-file="$T/munged.log" \
  --seed-file="$T/munge.seed" --force
port=$(( 20000 + (RANDOM % 20000) ))
user=$(id -un)
cat > "$T/slurm.conf" <<EOF
ClusterName=dctest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock,cred_expire=10
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=60
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# Slurm 24.05+ (Debian 13) initialises a cgroup plugin in slurmd even with proctrack/linuxproc and
# task/none, and fails where /sys/fs/cgroup is not a cgroup mount it knows (a hybrid v1 host, a
# chroot); nothing here uses cgroups, so they are turned off where that setting exists.
slurm_version=$(slurmctld -V | cut -d' ' -f2)
if [ "$(printf '%s\n' "$slurm_version" 24.05 | sort -V | head -1)" = 24.05 ]; then
  echo "CgroupPlugin=disabled" > "$T/cgroup.conf"
fi
export SLURM_CONF="$T/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localhost
idle() { sinfo -h -o %t | grep -qx idle; }
wait_for 60 "the Slurm node to be idle" idle
log "slurm $slurm_version up on localhost (ports $port, $((port + 1))), folder $T"

# ---- the experiment: 2 runs x 2 shards = 4 array tasks ----
cd "$T/work"
cat > exp.yaml <<EOF
experiment: slurmtest
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 20, spacing: quad}
  samples: {n: 32, batch: 4, seed: 5, save_images: true, grid: 4}
  metrics:
    fid_fmnist: {classifier: $ROOT/weights/fmnist/classifier.safetensors, reference: $ROOT/weights/fmnist/test_stats.npz}
sweep: {cache.k: [1], cache.interval: [3]}
EOF
export OMP_NUM_THREADS=1  # the tasks and the reference run use the same kernels and threads
"$CLI" plan exp.yaml --slurm --shards 2 --out slurm/exp.sbatch --merged merged.h5 --throttle 2 --time 10
bash slurm/exp.sbatch | tee submit.txt
array=$(sed -n 's/^submitted array job \([0-9]*\) .*/\1/p' submit.txt)
merge=$(sed -n 's/.* and merge job \([0-9]*\) .*/\1/p' submit.txt)
[ -n "$array" ] && [ -n "$merge" ] || fail "could not read the job ids from: $(cat submit.txt)"
mapfile -t RUNS < <("$CLI" plan exp.yaml | awk 'length($2) == 16 && $2 ~ /^[0-9a-f]+$/ {print $2}')
[ "${#RUNS[@]}" = 2 ] || fail "expected 2 run ids from plan, got ${#RUNS[*]}"

# ---- interrupt two running tasks after their first committed batch ----
journal_has_batch() { ls "slurm/$1.shard-$2-of-2.h5.journal/"*/batch-*.h5 >/dev/null 2>&1; }
wait_for 120 "task 0's first committed batch" journal_has_batch "${RUNS[0]}" 0
scontrol requeue "${array}_0"
log "requeued task ${array}_0 (scontrol requeue: TERM to the running job); $(scontrol show job "${array}_0" | grep -o 'EligibleTime=[^ ]*')"
wait_for 120 "task 1's first committed batch" journal_has_batch "${RUNS[0]}" 1
# scancel may answer "try again later" (and sometimes says so although the signal went through):
# the task's log tells.
got_usr1() { grep -q SIGUSR1 "slurm/logs/${array}_1.out"; }
for try in 1 2 3 4 5 6 7 8 9 10; do
  timeout 5 scancel --signal=USR1 --batch "${array}_1" 2>/dev/null || true
  for i in $(seq 15); do got_usr1 && break; sleep 0.2; done
  got_usr1 && break
done
got_usr1 || fail "task 1 never got SIGUSR1"
log "sent SIGUSR1 to the batch shell of task ${array}_1 (as --signal=B:USR1@120 does before a time limit)"

# ---- the merge job ----
merge_done() { scontrol show job "$merge" | grep -Eq 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT)'; }
wait_for 600 "the merge job $merge" merge_done
state=$(scontrol show job "$merge" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
[ "$state" = COMPLETED ] || fail "merge job $merge ended $state: $(cat slurm/logs/merge_*.out 2>/dev/null)"
log "merge job $merge: $(tr '\n' ' ' < slurm/logs/merge_"$merge".out)"
for t in 0 1; do
  f="slurm/logs/${array}_$t.out"
  grep -q "interrupted between batches\|SIGTERM: stopping" "$f" || fail "task $t's log does not show its interruption"
  grep -q "resuming after sample" "$f" || fail "task $t did not resume from its journal (log $f)"
  log "task $t: $(grep -c '^task .* (restart' "$f") starts; $(grep -m1 'resuming after sample' "$f" | sed 's/.*: resuming/resuming/')"
done
restarts=$(scontrol show job "${array}_0" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
[ "${restarts:-0}" -ge 1 ] || fail "task 0 was not requeued (Restarts=$restarts)"
ls slurm/*.journal >/dev/null 2>&1 && fail "journals left after every task completed: $(ls -d slurm/*.journal)"

# ---- the unsharded run, and the comparison ----
"$CLI" run exp.yaml --results whole.h5 > /dev/null 2> whole.log || fail "the unsharded run failed: $(tail -3 whole.log)"
"$PY" - merged.h5 whole.h5 <<'EOF' || fail "the merged file differs from the unsharded run"
import sys, h5py, numpy as np
m, w = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert sorted(m["runs"]) == sorted(w["runs"]), (list(m["runs"]), list(w["runs"]))
for rid in w["runs"]:
    a, b = m["runs"][rid], w["runs"][rid]
    attr = lambda g, k: g.attrs[k].decode() if isinstance(g.attrs[k], bytes) else str(g.attrs[k])
    assert attr(a, "status") == attr(b, "status") == "complete"
    assert attr(a, "thread_settings") == attr(b, "thread_settings"), (attr(a, "thread_settings"), attr(b, "thread_settings"))
    for name in ["images", "grid", "quality/fmnist_classes"] + ["state/fid_fmnist/" + k for k in b["state/fid_fmnist"]]:
        assert np.array_equal(a[name][()], b[name][()]), f"{rid}: {name} differs"
    for name in ["metrics/fid_fmnist", "metrics/confident_fraction", "metrics/samples"]:
        assert a[name][()] == b[name][()], f"{rid}: {name} {a[name][()]} != {b[name][()]}"
    print(f"  run {rid}: images {a['images'].shape}, FID-FMNIST {a['metrics/fid_fmnist'][()]:.6f} equal bit for bit; "
          f"resumed samples {a.attrs['resumed_samples']}")
EOF
log "PASS: 4 array tasks (2 interrupted, requeued, resumed), merge job afterok, merged == unsharded bit for bit"
