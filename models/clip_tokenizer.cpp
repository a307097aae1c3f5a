// CLIP byte-level BPE tokenizer; see clip_tokenizer.h. Python references are to openai/CLIP
// clip/simple_tokenizer.py (SimpleTokenizer) unless stated otherwise.
#include "models/clip_tokenizer.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "common/error.h"

namespace dc::models {

namespace {

constexpr const char* kStartOfText = "<|startoftext|>";
constexpr const char* kEndOfText = "<|endoftext|>";
// Unbounded in Python; bounded here so that a long-running process cannot grow without limit.
constexpr size_t kMaxCacheEntries = size_t{1} << 17;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Strict decoder: rejects truncated sequences, stray continuation bytes, overlong forms,
// surrogates and code points above U+10FFFF (what Python's bytes.decode('utf-8') rejects).
std::vector<char32_t> decode_utf8(const std::string& s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int len = 0;
    char32_t cp = 0, min = 0;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
      throw Error(fmt::format("clip tokenizer: invalid UTF-8 in text at byte offset {} (byte 0x{:02X} cannot "
                              "start a character)",
                              i, b0));
    }
    if (i + len > n) {
      throw Error(fmt::format("clip tokenizer: invalid UTF-8 in text at byte offset {} (truncated "
                              "{}-byte sequence at the end)",
                              i, len));
    }
    for (int k = 1; k < len; ++k) {
      const unsigned char b = p[i + k];
      if ((b & 0xC0) != 0x80) {
        throw Error(fmt::format("clip tokenizer: invalid UTF-8 in text at byte offset {} (lead byte 0x{:02X} "
                                "followed by 0x{:02X}, not a continuation byte)",
                                i, b0, b));
      }
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      throw Error(fmt::format(
          "clip tokenizer: invalid UTF-8 in text at byte offset {} (overlong, surrogate or out-of-range "
          "code point U+{:04X})",
          i, static_cast<uint32_t>(cp)));
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) append_utf8(out, cps[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes

// Unicode White_Space: what the `regex` module's \s matches in whitespace_clean and in the pattern.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Python's str.strip() (str.isspace): White_Space plus U+001C..U+001F.
bool is_py_strip_space(char32_t c) { return is_space(c) || (c >= 0x1C && c <= 0x1F); }

utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}

// \p{L}: Lu Ll Lt Lm Lo.
bool is_letter(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

// \p{N}: Nd Nl No.
bool is_number(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Unicode Case_Ignorable (for the Final_Sigma rule): Mn Me Cf Lm Sk, plus Word_Break MidLetter,
// MidNumLet and Single_Quote.
bool is_case_ignorable(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

// Unicode Cased: Lu Ll Lt, anything with a case mapping, plus the Other_Lowercase /
// Other_Uppercase characters without one that are not case-ignorable (ª º and the squared /
// negative circled / negative squared Latin capitals). Checked over every code point against
// CPython 3.11 str.lower() (Unicode 14).
bool is_cased(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
      return true;
    default:
      break;
  }
  const auto ci = static_cast<utf8proc_int32_t>(c);
  return utf8proc_tolower(ci) != ci || utf8proc_toupper(ci) != ci || c == 0xAA || c == 0xBA ||
         (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

// CPython's handle_capital_sigma (Objects/unicodeobject.c): U+03A3 lowercases to final sigma
// U+03C2 when preceded by a cased letter and not followed by one (case-ignorable characters
// in between are skipped), else to U+03C3.
char32_t lower_capital_sigma(const std::vector<char32_t>& s, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !is_cased(s[j - 1])) return 0x3C3;
  size_t k = i + 1;
  while (k < s.size() && is_case_ignorable(s[k])) ++k;
  return (k == s.size() || !is_cased(s[k])) ? 0x3C2 : 0x3C3;
}

// Python's str.lower(): per-code-point lowercase, except U+0130 -> "i" U+0307 (the one
// unconditional multi-character lowercase mapping) and context-dependent capital sigma.
std::vector<char32_t> py_lower(const std::vector<char32_t>& s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == 0x130) {
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {
      out.push_back(lower_capital_sigma(s, i));
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

// One character of a literal in the (re.IGNORECASE) pattern. The text is already lowercase, so
// only U+017F LATIN SMALL LETTER LONG S needs care: it case-folds to 's'.
bool literal_char_matches(char32_t c, char lit) {
  return c == static_cast<char32_t>(lit) || (lit == 's' && c == 0x17F);
}

// Length in code points of `lit` if it matches at s[i], else 0.
size_t match_literal(const std::vector<char32_t>& s, size_t i, const char* lit) {
  size_t k = 0;
  for (; lit[k] != '\0'; ++k) {
    if (i + k >= s.size() || !literal_char_matches(s[i + k], lit[k])) return 0;
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// Files

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("{}: read error", path));
  return ss.str();
}

// GPT-2's bytes_to_unicode(): printable bytes !..~, ¡..¬, ®..ÿ map to themselves, the other 68
// bytes to U+0100 + n in byte order. Returns the UTF-8 of each byte's symbol.
std::vector<std::string> bytes_to_unicode() {
  std::vector<std::string> table(256);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    std::string sym;
    append_utf8(sym, printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++));
    table[b] = sym;
  }
  return table;
}

}  // namespace

struct ClipTokenizer::Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int64_t>> ids;  // pre-token piece -> BPE ids
};

// ---------------------------------------------------------------------------------------------
// Loading

ClipTokenizer ClipTokenizer::load(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  ClipTokenizer tok;
  tok.byte_encoder_ = bytes_to_unicode();
  tok.cache_ = std::make_shared<Cache>();

  // vocab.json: {"token": id, ...} with ids 0..n-1, each once.
  {
    const std::string text = read_text_file(vocab_json_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: invalid JSON: {}", vocab_json_path, e.what()));
    }
    if (!j.is_object()) {
      throw Error(fmt::format("{}: expected a JSON object mapping token -> id, got {}", vocab_json_path,
                              j.type_name()));
    }
    const size_t n = j.size();
    std::vector<const std::string*> by_id(n, nullptr);
    tok.encoder_.reserve(n);
    for (auto it = j.begin(); it != j.end(); ++it) {
      const nlohmann::json& v = it.value();
      if (!v.is_number_integer()) {
        throw Error(fmt::format("{}: key \"{}\": id must be an integer, got {}", vocab_json_path, it.key(),
                                v.dump()));
      }
      const int64_t id = v.get<int64_t>();
      if (id < 0 || static_cast<uint64_t>(id) >= n) {
        throw Error(fmt::format("{}: key \"{}\": id {} is outside [0, {}) (ids must be 0..n-1)",
                                vocab_json_path, it.key(), id, n));
      }
      if (by_id[id] != nullptr) {
        throw Error(fmt::format("{}: key \"{}\": id {} is already used by \"{}\"", vocab_json_path, it.key(),
                                id, *by_id[id]));
      }
      by_id[id] = &tok.encoder_.emplace(it.key(), id).first->first;
    }
    for (const char* special : {kStartOfText, kEndOfText}) {
      if (tok.encoder_.find(special) == tok.encoder_.end()) {
        throw Error(fmt::format("{}: missing special token \"{}\"", vocab_json_path, special));
      }
    }
    tok.sot_ = tok.encoder_.at(kStartOfText);
    tok.eot_ = tok.encoder_.at(kEndOfText);
    // Every BPE word starts from byte symbols; the last carries "</w>".
    for (int b = 0; b < 256; ++b) {
      for (const std::string& sym : {tok.byte_encoder_[b], tok.byte_encoder_[b] + "</w>"}) {
        if (tok.encoder_.find(sym) == tok.encoder_.end()) {
          throw Error(fmt::format("{}: missing byte symbol \"{}\" (byte 0x{:02X})", vocab_json_path, sym, b));
        }
      }
    }
  }

  // merges.txt: optional "#version: ..." first line, then "first second" per line; rank = index.
  // (Hugging Face's CLIPTokenizer and SimpleTokenizer skip the first line unconditionally and
  // keep ranks 0..48893; the Hugging Face file holds exactly those.)
  {
    const std::string text = read_text_file(merges_txt_path);
    std::vector<std::string> lines;
    {
      size_t start = 0;
      while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
        start = end + 1;
      }
    }
    // Trailing blank lines (the final newline) are not merges.
    while (!lines.empty() && lines.back().find_first_not_of(" \t") == std::string::npos) lines.pop_back();
    size_t first = 0;
    if (!lines.empty() && !lines[0].empty() && lines[0][0] == '#') first = 1;
    tok.bpe_ranks_.reserve(lines.size());
    int rank = 0;
    for (size_t li = first; li < lines.size(); ++li, ++rank) {
      const std::string& line = lines[li];
      std::vector<std::string> parts;
      size_t pos = 0;
      while (pos < line.size()) {
        const size_t b = line.find_first_not_of(" \t", pos);
        if (b == std::string::npos) break;
        size_t e = line.find_first_of(" \t", b);
        if (e == std::string::npos) e = line.size();
        parts.push_back(line.substr(b, e - b));
        pos = e;
      }
      if (parts.size() != 2) {
        throw Error(fmt::format("{}:{}: expected a merge \"first second\" (two space-separated symbols), got "
                                "\"{}\"",
                                merges_txt_path, li + 1, line));
      }
      const std::string merged = parts[0] + parts[1];
      if (tok.encoder_.find(merged) == tok.encoder_.end()) {
        throw Error(fmt::format("{}:{}: merge \"{} {}\" gives \"{}\", which is not in {}", merges_txt_path,
                                li + 1, parts[0], parts[1], merged, vocab_json_path));
      }
      // A repeated merge keeps its last rank, as Python's dict(zip(merges, range(len(merges)))).
      tok.bpe_ranks_[parts[0] + " " + parts[1]] = rank;
    }
  }
  return tok;
}

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir) {
  std::string base = dir;
  if (!base.empty() && base.back() != '/') base += '/';
  return load(base + "vocab.json", base + "merges.txt");
}

// ---------------------------------------------------------------------------------------------
// Normalisation and pre-tokenisation

// whitespace_clean(text).lower(): re.sub(r'\s+', ' ', text).strip(), then str.lower().
std::string ClipTokenizer::normalize(const std::string& text) {
  const std::vector<char32_t> cps = decode_utf8(text);
  std::vector<char32_t> cleaned;
  cleaned.reserve(cps.size());
  for (size_t i = 0; i < cps.size();) {
    if (is_space(cps[i])) {
      while (i < cps.size() && is_space(cps[i])) ++i;
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(cps[i++]);
    }
  }
  size_t b = 0, e = cleaned.size();
  while (b < e && is_py_strip_space(cleaned[b])) ++b;
  while (e > b && is_py_strip_space(cleaned[e - 1])) --e;
  const std::vector<char32_t> stripped(cleaned.begin() + b, cleaned.begin() + e);
  const std::vector<char32_t> lower = py_lower(stripped);
  return encode_utf8(lower, 0, lower.size());
}

// re.findall(pat, text) with
//   pat = <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// At each position the alternatives are tried in order and the first that matches wins; a
// position where none matches (whitespace) is skipped.
std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& normalized_text) {
  static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  const std::vector<char32_t> s = decode_utf8(normalized_text);
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (s[i] == U'<') {
      len = match_literal(s, i, kStartOfText);
      if (len == 0) len = match_literal(s, i, kEndOfText);
    } else if (s[i] == U'\'') {
      for (const char* c : kContractions) {
        if ((len = match_literal(s, i, c)) != 0) break;
      }
    }
    if (len == 0) {
      const char32_t c = s[i];
      if (is_letter(c)) {
        while (i + len < s.size() && is_letter(s[i + len])) ++len;
      } else if (is_number(c)) {
        len = 1;
      } else if (!is_space(c)) {
        while (i + len < s.size() && !is_space(s[i + len]) && !is_letter(s[i + len]) &&
               !is_number(s[i + len])) {
          ++len;
        }
      }
    }
    if (len == 0) {  // whitespace: no alternative matches here
      ++i;
      continue;
    }
    pieces.push_back(encode_utf8(s, i, i + len));
    i += len;
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// BPE

// SimpleTokenizer.bpe followed by the encoder lookup. The special pieces are in Python's initial
// cache and map to their ids without BPE.
std::vector<int64_t> ClipTokenizer::bpe_ids(const std::string& piece) const {
  if (piece == kStartOfText) return {sot_};
  if (piece == kEndOfText) return {eot_};
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->ids.find(piece);
    if (it != cache_->ids.end()) return it->second;
  }

  // word = tuple(token[:-1]) + (token[-1] + '</w>',), one symbol per byte.
  std::vector<std::string> word;
  word.reserve(piece.size());
  for (unsigned char b : piece) word.push_back(byte_encoder_[b]);
  if (word.empty()) return {};
  word.back() += "</w>";

  // Repeatedly merge the lowest-ranked adjacent pair, every occurrence left to right.
  std::string key;
  while (word.size() > 1) {
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(" ").append(word[i + 1]);
      auto it = bpe_ranks_.find(key);
      if (it != bpe_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string first = word[best], second = word[best + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(word[i]));
        i += 1;
      }
    }
    word = std::move(merged);
  }

  std::vector<int64_t> ids;
  ids.reserve(word.size());
  for (const std::string& sym : word) {
    auto it = encoder_.find(sym);
    // Unreachable: load() checked every byte symbol and every merge result.
    if (it == encoder_.end()) throw Error(fmt::format("clip tokenizer: BPE symbol \"{}\" is not in the vocab", sym));
    ids.push_back(it->second);
  }

  std::lock_guard<std::mutex> lock(cache_->mu);
  if (cache_->ids.size() >= kMaxCacheEntries) cache_->ids.clear();
  cache_->ids.emplace(piece, ids);
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : pre_tokenize(normalize(text))) {
    const std::vector<int64_t> piece_ids = bpe_ids(piece);
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text, int context_length, Padding pad,
                                             int64_t* bpe_length) const {
  if (context_length < 2) {
    throw Error(fmt::format("clip tokenizer: context_length must be >= 2 (room for start and end tokens), "
                            "got {}",
                            context_length));
  }
  const std::vector<int64_t> bpe = encode(text);
  if (bpe_length != nullptr) *bpe_length = static_cast<int64_t>(bpe.size());
  const size_t keep = std::min(bpe.size(), static_cast<size_t>(context_length - 2));
  std::vector<int64_t> ids;
  ids.reserve(context_length);
  ids.push_back(sot_);
  ids.insert(ids.end(), bpe.begin(), bpe.begin() + static_cast<std::ptrdiff_t>(keep));
  ids.push_back(eot_);
  ids.resize(context_length, pad == Padding::EndToken ? eot_ : 0);
  return ids;
}

std::vector<std::vector<int64_t>> ClipTokenizer::tokenize_batch(const std::vector<std::string>& texts,
                                                                int context_length, Padding pad,
                                                                std::vector<int64_t>* bpe_lengths) const {
  std::vector<std::vector<int64_t>> out;
  out.reserve(texts.size());
  if (bpe_lengths != nullptr) bpe_lengths->assign(texts.size(), 0);
  for (size_t i = 0; i < texts.size(); ++i) {
    out.push_back(tokenize(texts[i], context_length, pad, bpe_lengths ? &(*bpe_lengths)[i] : nullptr));
  }
  return out;
}

}  // namespace dc::models
