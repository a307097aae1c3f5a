// The CLIP byte-level BPE tokenizer of openai/CLIP clip/simple_tokenizer.py (SimpleTokenizer), which
// open_clip v2.23 src/open_clip/tokenizer.py and the Hugging Face CLIPTokenizer used by Stable
// Diffusion reproduce. It reads the Hugging Face layout: vocab.json (token -> id) and merges.txt
// ("#version: ..." then one "a b" merge per line, rank = line index).
//
// Pipeline of encode(text), as SimpleTokenizer.encode:
//   1. Normalise: collapse every run of Unicode White_Space (the `regex` module's \s) to one space,
//      strip both ends, lowercase like Python's str.lower().
//   2. Pre-tokenise with the CLIP pattern
//        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      (every digit is a piece of its own; a hand-written scanner, no std::regex).
//   3. Map each piece's UTF-8 bytes through GPT-2's bytes_to_unicode table, append "</w>" to the last
//      symbol and apply the merges by rank; "<|startoftext|>" / "<|endoftext|>" map straight to their
//      ids.
//
// Known differences from the Python pipeline:
//   * ftfy.fix_text is NOT applied (and neither is SimpleTokenizer's double html.unescape, which the
//     Hugging Face CLIPTokenizer does not do either). Inputs that ftfy/html would change tokenize
//     differently here: HTML entities ("&amp;"), curly quotes, ligatures (U+FB01 "fi"), full-width
//     letters, mojibake, control characters, text that is not in NFC.
//   * Character properties come from utf8proc (its Unicode version may differ from Python's).
//   * open_clip names its special tokens "<start_of_text>"/"<end_of_text>" (same ids 49406/49407);
//     this class recognises the Hugging Face / openai spellings "<|startoftext|>"/"<|endoftext|>"
//     in the input text, as SimpleTokenizer does.
//
// Thread safety: all const methods may be called concurrently (the BPE cache is mutex-guarded;
// copies of a tokenizer share the cache).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace dc::models {

class ClipTokenizer {
 public:
  // How tokenize() fills the positions after <|endoftext|>.
  enum class Padding {
    EndToken,  // SD1.5 / Hugging Face CLIPTokenizer: pad with <|endoftext|> (49407)
    Zero,      // openai clip.tokenize, open_clip, SD2: pad with 0
  };

  // Loads vocab.json and merges.txt. Throws dc::Error naming the file (and line or key) for a missing
  // or unreadable file, invalid JSON, a non-integer or duplicate id, a merge line without exactly two
  // parts, a merge whose result is not in the vocab, a byte symbol missing from the vocab, or a
  // missing <|startoftext|> / <|endoftext|>.
  static ClipTokenizer load(const std::string& vocab_json_path, const std::string& merges_txt_path);
  // dir/vocab.json + dir/merges.txt.
  static ClipTokenizer from_dir(const std::string& dir);

  // BPE ids of `text`, without start/end tokens (SimpleTokenizer.encode). Throws dc::Error for
  // invalid UTF-8, naming the byte offset.
  std::vector<int64_t> encode(const std::string& text) const;

  // [sot] + encode(text)[:context_length-2] + [eot], padded to context_length (>= 2) per `pad`.
  // (open_clip truncates [sot]+bpe+[eot] to context_length and forces the last id to eot: the same
  // ids.) If bpe_length is given it receives encode(text).size() before truncation.
  std::vector<int64_t> tokenize(const std::string& text, int context_length, Padding pad,
                                int64_t* bpe_length = nullptr) const;
  // tokenize() for each text; bpe_lengths (if given) is resized to texts.size().
  std::vector<std::vector<int64_t>> tokenize_batch(const std::vector<std::string>& texts,
                                                   int context_length, Padding pad,
                                                   std::vector<int64_t>* bpe_lengths = nullptr) const;

  int64_t sot() const { return sot_; }                 // id of <|startoftext|> (49406 for CLIP)
  int64_t eot() const { return eot_; }                 // id of <|endoftext|> (49407 for CLIP)
  int64_t vocab_size() const { return static_cast<int64_t>(encoder_.size()); }  // 49408 for CLIP
  int64_t num_merges() const { return static_cast<int64_t>(bpe_ranks_.size()); }

  // The normalised text (whitespace collapsed and stripped, lowercased) and the pre-token pieces
  // that encode() runs BPE on; exposed for tests and debugging.
  static std::string normalize(const std::string& text);
  static std::vector<std::string> pre_tokenize(const std::string& normalized_text);

 private:
  ClipTokenizer() = default;
  // BPE ids of one pre-token piece (SimpleTokenizer.bpe + encoder lookup), cached.
  std::vector<int64_t> bpe_ids(const std::string& piece) const;

  struct Cache;
  std::unordered_map<std::string, int64_t> encoder_;  // token string -> id
  std::unordered_map<std::string, int> bpe_ranks_;    // "first second" -> merge rank
  std::vector<std::string> byte_encoder_;             // byte -> UTF-8 of its bytes_to_unicode symbol
  int64_t sot_ = -1;
  int64_t eot_ = -1;
  std::shared_ptr<Cache> cache_;
};

}  // namespace dc::models
