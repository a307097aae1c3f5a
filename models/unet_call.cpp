#include "models/unet_call.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.h"
#include "models/trace.h"
#include "models/unet.h"

namespace dc::models {

// ---- CallRequest ---------------------------------------------------------------------------------
std::string CallRequest::kind() const {
  std::string s = CallPlan::kind();
  if (!given.empty()) {
    std::vector<int> ids;
    for (const auto& [id, v] : given) ids.push_back(id);
    s += fmt::format(" given {}", compact_ids(ids));
  }
  if (gate) s += fmt::format(" gate {}", gate->stage);
  return s;
}

// ---- StageCache -----------------------------------------------------------------------------------
void StageCache::reset() {
  stored_.clear();
  residual_ = torch::Tensor();
}

void StageCache::store(int stage, torch::Tensor value) { stored_[stage] = std::move(value); }

const torch::Tensor& StageCache::get(int stage, int64_t batch, const std::string& stage_name) const {
  const auto it = stored_.find(stage);
  if (it == stored_.end())
    throw Error(fmt::format("cache: a call reuses the output of {} but no earlier call of this generation stored it (the "
                            "first call must compute everything)", stage_name));
  if (it->second.size(0) != batch)
    throw Error(fmt::format("cache: the stored output of {} holds a batch of {}, the call has {}", stage_name,
                            it->second.size(0), batch));
  return it->second;
}

const torch::Tensor& StageCache::peek(int stage) const {
  static const torch::Tensor none;
  const auto it = stored_.find(stage);
  return it == stored_.end() ? none : it->second;
}

void StageCache::store_residual(const torch::Tensor& x, const torch::Tensor& out) {
  residual_ = out - x;
}

const torch::Tensor& StageCache::residual(int64_t batch) const {
  if (!residual_.defined())
    throw Error("cache: a call skips the whole UNet but no earlier call of this generation stored its output residual");
  if (residual_.size(0) != batch)
    throw Error(fmt::format("cache: the stored residual holds a batch of {}, the call has {}", residual_.size(0), batch));
  return residual_;
}

// ---- run_call -------------------------------------------------------------------------------------
namespace {

// Adds the MACs the trace counted since the last mark to `paper`/`all`.
struct MacMeter {
  Trace* trace;
  double macs = 0, all = 0;
  void mark() {
    if (trace && trace->count_macs) macs = trace->macs, all = trace->macs_all;
  }
  void take(double& paper, double& every) {
    if (!trace || !trace->count_macs) return;
    paper = trace->macs - macs;
    every = trace->macs_all - all;
    mark();
  }
};

void check_plan(const CallPlan& req, int S, const StageCache* cache) {
  const int n = num_stages(S);
  if (!req.stages.empty() && static_cast<int>(req.stages.size()) != n)
    throw Error(fmt::format("cache request: {} stage actions for a UNet of {} stages (2S+1 with S = {} skips)",
                            req.stages.size(), n, S));
  for (const std::vector<int>* ids : {&req.store, &req.observe})
    for (int id : *ids)
      if (id < 0 || id >= n) throw Error(fmt::format("cache request: stage id {} is outside 0..{}", id, n - 1));
  if (!cache && (req.skip_all || req.store_residual || !req.store.empty() ||
                 std::any_of(req.stages.begin(), req.stages.end(), [](StageAction a) { return a != StageAction::Compute; })))
    throw Error("cache request: a call that stores or reuses needs a StageCache");
}

void check_request(const CallRequest& req, int S, const StageCache* cache) {
  check_plan(req, S, cache);
  if (!req.gate) return;
  const int n = num_stages(S);
  if (req.gate->stage < 0 || req.gate->stage >= n - 1 || !req.gate->reuse)
    throw Error(fmt::format("cache request: a gate needs a stage in 0..{} (one before the last) and a rule", n - 2));
  if (!req.stages.empty() && req.stages[req.gate->stage] != StageAction::Compute)
    throw Error(fmt::format("cache request: the gate measures stage {}, which the call does not compute", req.gate->stage));
  check_plan(req.gate->cached, S, cache);
}

}  // namespace

torch::Tensor run_call(UNet& net, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                       const CallRequest* req, StageCache* cache, Trace* trace, CallRecord* record) {
  const int S = net.num_skips(), n = num_stages(S);
  if (req) check_request(*req, S, cache);
  // Per-stage MACs only when the trace counts them (the sampler's calls do not: no allocation there).
  const bool counting = record && trace && trace->count_macs;
  if (record) {
    record->computed.assign(n, 0);
    record->outputs.clear();
    record->gated = false;
    record->stage_macs.assign(counting ? n : 0, 0.0);
    record->stage_macs_all.assign(counting ? n : 0, 0.0);
  }
  if (req && req->skip_all) {
    if (record) record->network = false;
    return x + cache->residual(x.size(0));
  }
  if (record) record->network = true;
  MacMeter meter{trace};
  meter.mark();
  const UNet::Embedding e = net.embed(x, t, cond, trace);
  if (counting) meter.take(record->embed_macs, record->embed_macs_all);
  // The actions in force: the request's, or its gate's continuation once the gate chose it.
  const CallPlan* plan = req;
  const auto action = [&](int s) { return plan && !plan->stages.empty() ? plan->stages[s] : StageAction::Compute; };
  const auto listed = [](const std::vector<int>& ids, int s) { return std::find(ids.begin(), ids.end(), s) != ids.end(); };
  std::vector<torch::Tensor> hs(S);
  torch::Tensor h;  // the previous stage's output
  for (int s = 0; s < n; ++s) {
    const StageAction a = action(s);
    if (a == StageAction::Skip) {
      h = torch::Tensor();
      continue;
    }
    if (a == StageAction::Reuse) {
      const auto given = req->given.find(s);
      h = given != req->given.end() ? given->second : cache->get(s, x.size(0), net.stage_name(s));
    } else {
      if (s > 0 && !h.defined())
        throw Error(fmt::format("cache request: {} is computed but {} before it is skipped", net.stage_name(s), net.stage_name(s - 1)));
      if (s < S) {
        h = net.input_block(s, s == 0 ? x : h, e, trace);
      } else if (s == S) {
        h = net.middle(h, e, trace);
      } else {
        const int i = s - S - 1;
        const torch::Tensor& skip = hs[S - 1 - i];
        if (!skip.defined())
          throw Error(fmt::format("cache request: {} needs skip hs[{}], whose {} is skipped", net.stage_name(s), S - 1 - i,
                                  net.stage_name(S - 1 - i)));
        h = net.output_block(i, h, skip, e, trace);
      }
      if (record) {
        record->computed[s] = 1;
        if (counting) meter.take(record->stage_macs[s], record->stage_macs_all[s]);
      }
      if (a == StageAction::ComputeDiscard) h = cache->get(s, x.size(0), net.stage_name(s));
    }
    if (s < S) hs[s] = h;
    if (plan && listed(plan->store, s)) cache->store(s, h);
    if (record && plan && listed(plan->observe, s)) record->outputs[s] = h;
    if (req && req->gate && s == req->gate->stage && plan == req && req->gate->reuse(h, hs)) {
      plan = &req->gate->cached;
      if (record) record->gated = true;
      if (plan->skip_all) return x + cache->residual(x.size(0));
    }
  }
  if (!h.defined()) throw Error(fmt::format("cache request: the last stage ({}) is skipped", net.stage_name(n - 1)));
  torch::Tensor out = net.head(h, trace);
  if (counting) meter.take(record->head_macs, record->head_macs_all);
  if (plan && plan->store_residual) cache->store_residual(x, out);
  return out;
}

}  // namespace dc::models
