// The CLIP tokenizer on arbitrary text (what users type): normalisation, pre-tokenisation, BPE,
// invalid UTF-8. Vocabulary: $DC_FUZZ_TOKENIZER (a folder with vocab.json and merges.txt), by
// default the repository's fixture tokenizer.
#include <cstdlib>

#include "common/error.h"
#include "fuzz_common.h"
#include "models/clip_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dc::models::ClipTokenizer tok = [] {
    const char* dir = std::getenv("DC_FUZZ_TOKENIZER");
    return dc::models::ClipTokenizer::from_dir(dir ? dir : DC_SOURCE_DIR "/tests/fixtures/clip/tokenizer");
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = tok.tokenize(text, 77, dc::models::ClipTokenizer::Padding::EndToken);
    if (ids.size() != 77 || ids.front() != tok.sot()) __builtin_trap();  // the contract of tokenize()
    for (int64_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  } catch (const dc::Error&) {
  }
  return 0;
}
