// Prompt files for text-to-image runs (`conditioning.prompts`, `clip-score --prompts`): UTF-8 text,
// one prompt per line; sample i is made from (and scored against) line i + 1. Torch-free.
//
// Accepted: LF or CRLF line ends, a final line with or without its newline, a UTF-8 byte-order mark
// at the very start (dropped). Refused, each with one dc::Error naming the file and the line: an
// empty or whitespace-only line (a blank line would silently shift every later prompt against its
// sample), bytes that are not UTF-8 (with the byte's column), a NUL byte, a file without prompts, a
// file over 1 GiB or with more than 10,000,000 lines (checked before reading it).
#pragma once
#include <string>
#include <vector>

#include "common/strings.h"

namespace dc {

std::vector<std::string> read_prompt_file(const std::string& path);

// The same from text already in memory; `origin` names it in messages.
std::vector<std::string> parse_prompts(const std::string& text, const std::string& origin);


}  // namespace dc
