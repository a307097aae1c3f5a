#include "harness/run/conditioner.h"

#include "harness/sampling/samplers.h"

namespace dc::harness {

Conditioner::Conditioner(const RunSpec& spec, const models::Model& model, const torch::Device& device, std::vector<std::string> prompts)
    : model_(model),
      device_(device),
      kind_(spec.plan.model.conditioning),
      guidance_(spec.conditioning.guidance),
      classes_(spec.conditioning.classes),
      prompt_(spec.conditioning.prompt),
      seed_(spec.samples.seed),
      num_classes_(spec.plan.model.num_classes),
      unconditional_class_(spec.plan.model.unconditional_class),
      prompts_(std::move(prompts)) {
  guided_ = kind_ != "none" && guidance_ != 1.0 ? 2 : 1;
  // The negative prompt's context once (the unconditional half of guidance).
  if (kind_ == "text") negative_context_ = model.encode_text({spec.conditioning.negative_prompt});
}

std::vector<std::string> Conditioner::prompts_of(int64_t start, int64_t b) const {
  if (prompts_.empty()) return std::vector<std::string>(b, prompt_);
  return std::vector<std::string>(prompts_.begin() + start, prompts_.begin() + start + b);
}

torch::Tensor Conditioner::labels_for(int64_t start, int64_t b) const {
  std::vector<int64_t> v(b);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t i = start + r;
    v[r] = classes_ == "balanced" ? i % num_classes_
                                  : static_cast<int64_t>(sampling::sample_seed(seed_ ^ 0x6c6162656c73ULL, i) % num_classes_);
  }
  return torch::tensor(v, torch::kInt64).to(device_);
}

Conditioner::Batch Conditioner::make(int64_t start, int64_t b, const torch::Tensor& stream_labels) const {
  Batch out;
  if (stream_labels.defined()) {
    out.labels = stream_labels;
    out.cond = stream_labels.to(device_);
  } else if (kind_ == "class") {
    out.cond = labels_for(start, b);
    out.labels = out.cond.to(torch::kCPU);
  }
  if (kind_ == "text") {  // the text encoder runs once per batch, inside the batch's time
    out.prompts = prompts_of(start, b);
    out.cond = model_.encode_text(out.prompts);
  }
  if (kind_ == "class" && guidance_ != 1.0) out.uncond = torch::full({b}, unconditional_class_, out.cond.options());
  if (kind_ == "text" && guidance_ != 1.0) out.uncond = negative_context_.expand({b, -1, -1});
  return out;
}

}  // namespace dc::harness
