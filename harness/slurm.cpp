#include "harness/slurm.h"

#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include "common/io_ops.h"
#include "common/error.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

// A bash word holding `s` verbatim.
std::string shq(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Slurm option values go on `#SBATCH` lines, which are not parsed by a shell.
void check_value(const std::string& key, const std::string& v) {
  for (char c : v)
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
      throw Error(fmt::format("plan --slurm: {} '{}': a Slurm option value cannot hold spaces or line breaks", key, v));
}

std::string absolute(const std::string& p) { return fs::absolute(fs::path(p)).lexically_normal().string(); }

}  // namespace

std::string write_slurm_script(const ExperimentSpec& e, const SlurmOptions& o, std::ostream& log) {
  if (o.shards < 1 || o.shards > 100000) throw Error(fmt::format("plan --slurm: --shards {}: expected 1 to 100000", o.shards));
  if (o.throttle < 1) throw Error(fmt::format("plan --slurm: --throttle {}: expected at least 1", o.throttle));
  if (e.runs.empty()) throw Error(fmt::format("{}: the experiment has no runs", e.path));
  const int64_t tasks = static_cast<int64_t>(e.runs.size()) * o.shards;
  // Slurm's default MaxArraySize is 1001 (indices 0-1000); sites raise it in slurm.conf.
  if (tasks > 1000000) throw Error(fmt::format("plan --slurm: {} runs x {} shards = {} array tasks: too many", e.runs.size(), o.shards, tasks));
  for (const auto& [k, v] : {std::pair{"--partition", o.partition}, {"--gres", o.gres}, {"--time", o.time}, {"--account", o.account}})
    check_value(k, v);
  const std::string script = absolute(o.out.empty() ? fmt::format("results/{}/slurm/{}.sbatch", e.name, e.name) : o.out);
  const std::string shard_dir = absolute(o.shard_dir.empty() ? fs::path(script).parent_path().string() : o.shard_dir);
  const std::string merged = absolute(o.merged.empty() ? fmt::format("results/{}/{}.h5", e.name, e.name) : o.merged);
  std::string cli = o.cli;
  if (cli.empty()) {
    std::error_code ec;
    cli = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec || cli.empty()) throw Error("plan --slurm: cannot tell this program's path; give --cli PATH");
  }
  cli = absolute(cli);
  const std::string experiment = absolute(e.path);
  const std::string cwd = fs::current_path().string();
  const std::string logs = shard_dir + "/logs";
  dc::io::make_folders(logs);  // sbatch does not create the --output folder

  std::ostringstream s;
  s << "#!/bin/bash\n";
  s << fmt::format("# deepcache-bench: Slurm job array for experiment '{}': {} runs x {} shards = {} array tasks.\n", e.name, e.runs.size(),
                   o.shards, tasks);
  s << "# Written by `deepcache-bench plan --slurm` (docs/slurm.md). Submit with\n";
  s << "#   bash " << script << "\n";
  s << "# which submits this file as the array and a merge job that runs when every task succeeded\n";
  s << "# (--dependency=afterok). `sbatch` on this file submits the array alone.\n";
  s << "# Each task runs one shard of one run into its own file under " << shard_dir << ";\n";
  s << "# every finished batch is committed to the run's journal, so a requeued task resumes where it stopped.\n";
  s << fmt::format("#SBATCH --job-name=dc-{}\n", e.name);
  s << fmt::format("#SBATCH --array=0-{}%{}\n", tasks - 1, o.throttle);
  s << "#SBATCH --requeue\n";
  s << "#SBATCH --signal=B:USR1@120\n";
  s << "#SBATCH --open-mode=append\n";
  s << fmt::format("#SBATCH --output={}/%A_%a.out\n", logs);
  s << fmt::format("#SBATCH --chdir={}\n", cwd);
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.account.empty()) s << "#SBATCH --account=" << o.account << "\n";
  if (!o.gres.empty()) s << "#SBATCH --gres=" << o.gres << "\n";
  if (!o.time.empty()) s << "#SBATCH --time=" << o.time << "\n";
  s << "set -u\n";
  s << "CLI=" << shq(cli) << "\n";
  s << "EXPERIMENT=" << shq(experiment) << "\n";
  s << "SHARD_DIR=" << shq(shard_dir) << "\n";
  s << "MERGED=" << shq(merged) << "\n";
  s << "SHARDS=" << o.shards << "\n";
  s << "SETS=(";
  for (const auto& kv : o.sets) s << " --set " << shq(kv);
  s << " )\n";
  s << "RUNS=(";
  for (std::size_t i = 0; i < e.runs.size(); ++i) s << (i % 4 == 0 ? "\n  " : " ") << e.runs[i].run_id;
  s << "\n)\n";
  s << R"SH(
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  # Submission (bash on the login node): the array, then the merge job waiting for all of it.
  mkdir -p "$SHARD_DIR/logs" "$(dirname "$MERGED")" || exit 1
  array=$(sbatch --parsable "$0") || exit 1
  array=${array%%;*}
  merge_cmd="$(printf '%q ' "$CLI" merge --out "$MERGED")$(printf '%q' "$SHARD_DIR")/*.shard-*-of-$SHARDS.h5"
  merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --job-name="${SLURM_MERGE_NAME:-dc-merge}" \
    --output="$SHARD_DIR/logs/merge_%j.out" --chdir="$PWD" MERGE_OPTIONS --wrap "$merge_cmd") || exit 1
  echo "submitted array job $array (${#RUNS[@]} runs x $SHARDS shards) and merge job $merge (afterok:$array) -> $MERGED"
  exit 0
fi

# Array task: shard (task mod SHARDS) of run (task / SHARDS).
run=${RUNS[$((SLURM_ARRAY_TASK_ID / SHARDS))]}
shard=$((SLURM_ARRAY_TASK_ID % SHARDS))
out="$SHARD_DIR/$run.shard-$shard-of-$SHARDS.h5"
child=0
# USR1 comes to this shell only (--signal=B:): the running batch commits and the run stops with
# exit 75; the task is then requeued and resumes. A TERM (scancel, scontrol requeue) reaches every
# process of the job: the run stops after its batch by itself, so it is not forwarded.
on_usr1() {
  echo "task $SLURM_ARRAY_TASK_ID: SIGUSR1 (time limit or pre-emption ahead): stopping after the running batch"
  [ "$child" -gt 0 ] && kill -USR1 "$child" 2>/dev/null
}
trap on_usr1 USR1
trap 'echo "task $SLURM_ARRAY_TASK_ID: SIGTERM: stopping after the running batch"' TERM
echo "task $SLURM_ARRAY_TASK_ID (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run $run shard $shard/$SHARDS -> $out"
"$CLI" run "$EXPERIMENT" --only "$run" --shard "$shard/$SHARDS" --results "$out" "${SETS[@]}" &
child=$!
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break  # a trap interrupted wait: the run is still finishing its batch
done
if [ "$rc" -eq 75 ]; then
  echo "task $SLURM_ARRAY_TASK_ID: interrupted between batches; requeueing"
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
fi
exit "$rc"
)SH";
  std::string text = s.str();
  std::string merge_opts;
  if (!o.partition.empty()) merge_opts += " --partition=" + o.partition;
  if (!o.account.empty()) merge_opts += " --account=" + o.account;
  if (!o.time.empty()) merge_opts += " --time=" + o.time;
  const auto at = text.find(" MERGE_OPTIONS");
  text.replace(at, 14, merge_opts);
  const auto name_at = text.find("${SLURM_MERGE_NAME:-dc-merge}");
  text.replace(name_at, 29, "dc-" + e.name + "-merge");

  dc::io::make_folders(fs::path(script).parent_path().string());
  const std::string tmp = script + ".tmp";
  {
    std::ofstream f(tmp);
    if (!(f << text)) throw Error(fmt::format("{}: cannot write the Slurm script", tmp));
  }
  fs::permissions(tmp, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  fs::rename(tmp, script);
  log << fmt::format("slurm       {} ({} runs x {} shards = {} array tasks, at most {} at once)\n", script, e.runs.size(), o.shards, tasks,
                     o.throttle);
  log << fmt::format("submit      bash {}   (array + merge job -> {})\n", script, merged);
  return script;
}

}  // namespace dc::harness
