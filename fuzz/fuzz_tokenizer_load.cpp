// vocab.json + merges.txt as a user's tokenizer folder holds them: the input is split at the
// first "\n====\n" into the two files (no separator: all of it is vocab.json, merges.txt empty).
#include <cstring>
#include <string>

#include "common/error.h"
#include "fuzz_common.h"
#include "models/clip_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string vocab = dc::fuzz::scratch_path("vocab.json"), merges = dc::fuzz::scratch_path("merges.txt");
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto cut = in.find("\n====\n");
  const std::string v = cut == std::string::npos ? in : in.substr(0, cut);
  const std::string m = cut == std::string::npos ? "" : in.substr(cut + 6);
  dc::fuzz::write_file(vocab, reinterpret_cast<const uint8_t*>(v.data()), v.size());
  dc::fuzz::write_file(merges, reinterpret_cast<const uint8_t*>(m.data()), m.size());
  try {
    const auto tok = dc::models::ClipTokenizer::load(vocab, merges);
    (void)tok.tokenize("a photograph of an astronaut riding a horse", 77, dc::models::ClipTokenizer::Padding::Zero);
  } catch (const dc::Error&) {
  }
  return 0;
}
