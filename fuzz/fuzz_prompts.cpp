// Prompt files: line endings, BOM, UTF-8 validity, empty lines, NUL bytes, sizes.
#include "common/error.h"
#include "common/prompts.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)dc::parse_prompts(text, "fuzz.txt");
  } catch (const dc::Error&) {
  }
  static const std::string path = dc::fuzz::scratch_path("prompts.txt");
  dc::fuzz::write_file(path, data, size);
  try {
    (void)dc::read_prompt_file(path);
  } catch (const dc::Error&) {
  }
  (void)dc::first_invalid_utf8(text);
  return 0;
}
