// Prompt files (common/prompts.h): one prompt per line, and every way a file can be wrong is one
// error naming the file and the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/prompts.h"
#include "support/fixtures.h"

namespace {
std::string error_of(const std::string& text) {
  try {
    dc::parse_prompts(text, "p.txt");
  } catch (const dc::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Prompts, OnePromptPerLineWithCrlfBomAndAnOpenLastLine) {
  using V = std::vector<std::string>;
  EXPECT_EQ(dc::parse_prompts("a cat\nthe dog\n", "p"), (V{"a cat", "the dog"}));
  EXPECT_EQ(dc::parse_prompts("a cat\r\nthe dog", "p"), (V{"a cat", "the dog"}));
  EXPECT_EQ(dc::parse_prompts("\xEF\xBB\xBF" "caf\xC3\xA9 au lait\n", "p"), (V{"caf\xC3\xA9 au lait"}));
  EXPECT_EQ(dc::parse_prompts("  leading and trailing spaces kept  \n", "p"), (V{"  leading and trailing spaces kept  "}));
  EXPECT_EQ(dc::parse_prompts("\xF0\x9F\x90\x88 emoji\n", "p"), (V{"\xF0\x9F\x90\x88 emoji"}));
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/p.txt") << "one\ntwo\nthree\n";
  EXPECT_EQ(dc::read_prompt_file(dir + "/p.txt"), (V{"one", "two", "three"}));
}

TEST(Prompts, BadFilesAreOneErrorNamingFileAndLine) {
  struct Bad { std::string text, phrase; };
  const std::vector<Bad> bad = {
      {"a\n\nb\n", "p.txt:2: an empty line"},
      {"a\n \t \nb\n", "p.txt:2: an empty line"},
      {"a\r\n\r\n", "p.txt:2: an empty line"},
      {"", "p.txt: no prompts"},
      {"\xEF\xBB\xBF", "p.txt: no prompts"},
      {"ok\nbad \xFF byte\n", "p.txt:2: not UTF-8 at column 5 (byte 0xFF)"},
      {"latin-1 caf\xE9\n", "p.txt:1: not UTF-8 at column 12 (byte 0xE9)"},
      {"overlong \xC0\xAF\n", "p.txt:1: not UTF-8 at column 10 (byte 0xC0)"},
      {"surrogate \xED\xA0\x80\n", "p.txt:1: not UTF-8 at column 11"},
      {"above U+10FFFF \xF4\x90\x80\x80\n", "p.txt:1: not UTF-8 at column 16"},
      {"truncated \xE2\x82", "p.txt:1: not UTF-8 at column 11"},
      {std::string("nul\0byte\n", 9), "p.txt:1: a NUL byte at column 4"},
  };
  for (const auto& b : bad) {
    const std::string err = error_of(b.text);
    EXPECT_NE(err.find(b.phrase), std::string::npos) << "want: " << b.phrase << "\ngot:  " << err;
  }
  EXPECT_EQ(dc::first_invalid_utf8("plain ascii"), std::string::npos);
  EXPECT_EQ(dc::first_invalid_utf8("\xE2\x82\xAC euro"), std::string::npos);
  EXPECT_EQ(dc::first_invalid_utf8("x\x80"), 1u);
  const std::string dir = dc::test::temp_dir();
  for (const auto& [path, phrase] : std::vector<std::pair<std::string, std::string>>{
           {dir + "/missing.txt", "missing.txt: prompt file not found"}, {dir, "a folder, not a prompt file"}}) {
    try {
      dc::read_prompt_file(path);
      ADD_FAILURE() << path << " accepted";
    } catch (const dc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  }
}
