#include "services/models/clip/clip_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/clip/unicode_text.h"

namespace imginterp::clip {
namespace {

// transformers keeps lines [1, 49152 - 256 - 2 + 1) of merges.txt.
constexpr size_t kMergeLinesEnd = 49152 - 256 - 2 + 1;
constexpr std::string_view kEndOfWord = "</w>";
constexpr std::u32string_view kContractions[] = {U"'s", U"'t",  U"'re", U"'ve",
                                                 U"'m", U"'ll", U"'d"};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string_view StripWhitespace(std::string_view s) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitOnSpaces(std::string_view line) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) parts.push_back(line.substr(i, j - i));
    i = j;
  }
  return parts;
}

// Whitespace-separated words of `text`.
std::vector<std::u32string> SplitWords(const std::u32string& text) {
  std::vector<std::u32string> words;
  std::u32string current;
  for (char32_t c : text) {
    if (detail::IsWhitespace(c)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

bool StartsWithAt(const std::u32string& text, size_t pos, std::u32string_view prefix,
                  bool ignore_case) {
  if (pos + prefix.size() > text.size()) return false;
  for (size_t k = 0; k < prefix.size(); ++k) {
    char32_t a = text[pos + k];
    char32_t b = prefix[k];
    if (ignore_case && a >= U'A' && a <= U'Z') a += 0x20;
    if (a != b) return false;
  }
  return true;
}

// Splits UTF-8 text into its characters (each as a UTF-8 string).
std::vector<std::string> Utf8Chars(std::string_view text) {
  std::vector<std::string> chars;
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t len = 1;
    if ((b & 0xE0) == 0xC0) {
      len = 2;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
    }
    len = std::min(len, text.size() - i);
    chars.emplace_back(text.substr(i, len));
    i += len;
  }
  return chars;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClipTokenizer>> ClipTokenizer::Create(
    const std::string& vocab_json_path, const std::string& merges_path,
    const ClipTokenizerOptions& options) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string vocab, ReadFile(vocab_json_path));
  IMGINTERP_ASSIGN_OR_RETURN(std::string merges, ReadFile(merges_path));
  auto tokenizer = FromStrings(vocab, merges, options);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(tokenizer.status().message(), " (vocab ", vocab_json_path,
                                     ", merges ", merges_path, ")"));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<ClipTokenizer>> ClipTokenizer::FromFolder(
    const std::string& dir, const ClipTokenizerOptions& options) {
  return Create(dir + "/vocab.json", dir + "/merges.txt", options);
}

absl::StatusOr<std::unique_ptr<ClipTokenizer>> ClipTokenizer::FromStrings(
    std::string_view vocab_json, std::string_view merges, const ClipTokenizerOptions& options) {
  if (options.max_length < 2) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer max_length is ", options.max_length,
                                                   "; it must be at least 2 (bos and eos)"));
  }
  std::unique_ptr<ClipTokenizer> t(new ClipTokenizer(options));
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("vocab.json is not valid JSON: ", e.what()));
  }
  if (!vocab.is_object()) {
    return absl::InvalidArgumentError("vocab.json must be a JSON object {\"token\": id, ...}");
  }
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocab.json: the id of token \"", token, "\" is not an integer"));
    }
    t->encoder_[token] = id.get<int64_t>();
    t->decoder_[id.get<int64_t>()] = token;
  }

  const std::string_view all = StripWhitespace(merges);
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= all.size() && line_no < kMergeLinesEnd) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    if (line_no >= 1) {
      const auto parts = SplitOnSpaces(all.substr(pos, end - pos));
      if (parts.size() == 2) {
        t->bpe_ranks_[absl::StrCat(std::string(parts[0]), " ", std::string(parts[1]))] =
            static_cast<int64_t>(line_no - 1);
      }
    }
    ++line_no;
    pos = end + 1;
  }

  // bytes_to_unicode(): printable bytes stand for themselves, the others for 256 + n in order.
  std::set<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.insert(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.insert(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.insert(b);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t stand_in = printable.count(b) ? static_cast<char32_t>(b) : 256 + n++;
    std::string utf8;
    detail::AppendUtf8(stand_in, &utf8);
    t->byte_encoder_[b] = utf8;
    t->byte_decoder_[utf8] = static_cast<uint8_t>(b);
  }

  auto lookup = [&](const std::string& token, const char* role) -> absl::StatusOr<int64_t> {
    auto it = t->encoder_.find(token);
    if (it == t->encoder_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocab.json has no ", role, " token \"", token, "\""));
    }
    return it->second;
  };
  IMGINTERP_ASSIGN_OR_RETURN(t->bos_id_, lookup(options.bos_token, "bos"));
  IMGINTERP_ASSIGN_OR_RETURN(t->eos_id_, lookup(options.eos_token, "eos"));
  IMGINTERP_ASSIGN_OR_RETURN(t->unk_id_, lookup(options.unk_token, "unk"));
  if (options.pad_token_id.has_value()) {
    t->pad_id_ = *options.pad_token_id;
  } else {
    IMGINTERP_ASSIGN_OR_RETURN(t->pad_id_, lookup(options.pad_token, "pad"));
  }
  return t;
}

std::string ClipTokenizer::Normalize(std::string_view text) const {
  std::u32string out;
  if (options_.fix_text) {
    const std::u32string decoded = detail::DecodeUtf8(detail::UnescapeHtml(text));
    bool first = true;
    for (const auto& word : SplitWords(decoded)) {
      if (!first) out.push_back(U' ');
      first = false;
      for (char32_t c : word) detail::AppendLower(c, &out);
    }
    return detail::EncodeUtf8(out);
  }
  // BasicTokenizer(strip_accents=False, do_split_on_punc=False): clean, space out CJK, split on
  // whitespace, lower-case each word, join with single spaces.
  std::u32string cleaned;
  for (char32_t c : detail::DecodeUtf8(text)) {
    if (c == 0 || c == 0xFFFD || detail::IsControl(c)) continue;
    if (detail::IsCjk(c)) {
      cleaned.push_back(U' ');
      cleaned.push_back(c);
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(c);
    }
  }
  bool first = true;
  for (const auto& word : SplitWords(cleaned)) {
    if (!first) out.push_back(U' ');
    first = false;
    for (char32_t c : word) detail::AppendLower(c, &out);
  }
  return detail::EncodeUtf8(out);
}

std::vector<std::string> ClipTokenizer::PreTokenize(std::string_view normalized) const {
  static constexpr std::u32string_view kSpecial[] = {U"<|startoftext|>", U"<|endoftext|>"};
  const std::u32string text = detail::DecodeUtf8(normalized);
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 0;
    for (auto special : kSpecial) {
      if (StartsWithAt(text, i, special, /*ignore_case=*/true)) {
        len = special.size();
        break;
      }
    }
    if (len == 0 && text[i] == U'\'') {
      for (auto contraction : kContractions) {
        if (StartsWithAt(text, i, contraction, /*ignore_case=*/true)) {
          len = contraction.size();
          break;
        }
      }
    }
    const char32_t c = text[i];
    if (len == 0 && detail::IsLetter(c)) {
      while (i + len < text.size() && detail::IsLetter(text[i + len])) ++len;
    } else if (len == 0 && detail::IsNumber(c)) {
      len = 1;
    } else if (len == 0 && !detail::IsWhitespace(c)) {
      while (i + len < text.size()) {
        const char32_t d = text[i + len];
        if (detail::IsWhitespace(d) || detail::IsLetter(d) || detail::IsNumber(d)) break;
        ++len;
      }
    }
    if (len == 0) {
      ++i;  // whitespace separates pieces
      continue;
    }
    pieces.push_back(detail::EncodeUtf8(std::u32string_view(text).substr(i, len)));
    i += len;
  }
  return pieces;
}

std::vector<std::string> ClipTokenizer::Bpe(const std::string& piece) const {
  std::vector<std::string> word = Utf8Chars(piece);
  if (word.empty()) return {};
  word.back() += kEndOfWord;
  if (word.size() == 1) return word;
  while (word.size() > 1) {
    int64_t best_rank = std::numeric_limits<int64_t>::max();
    size_t best = 0;
    for (size_t k = 0; k + 1 < word.size(); ++k) {
      auto it = bpe_ranks_.find(absl::StrCat(word[k], " ", word[k + 1]));
      if (it != bpe_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = k;
      }
    }
    if (best_rank == std::numeric_limits<int64_t>::max()) break;
    const std::string first = word[best];
    const std::string second = word[best + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t k = 0; k < word.size();) {
      if (k + 1 < word.size() && word[k] == first && word[k + 1] == second) {
        merged.push_back(first + second);
        k += 2;
      } else {
        merged.push_back(word[k]);
        ++k;
      }
    }
    word = std::move(merged);
  }
  return word;
}

std::vector<std::string> ClipTokenizer::TokenizePlain(std::string_view text) const {
  std::vector<std::string> tokens;
  for (const std::string& piece : PreTokenize(Normalize(text))) {
    if (piece == "<|startoftext|>" || piece == "<|endoftext|>") {
      tokens.push_back(piece);
      continue;
    }
    std::string encoded;
    for (unsigned char b : piece) encoded += byte_encoder_[b];
    for (auto& token : Bpe(encoded)) tokens.push_back(std::move(token));
  }
  return tokens;
}

std::vector<std::string> ClipTokenizer::Tokenize(std::string_view text) const {
  // Special-token strings are split out of the raw text first (transformers' added tokens).
  std::vector<std::string> specials = {options_.bos_token, options_.eos_token, options_.unk_token,
                                       options_.pad_token};
  std::vector<std::string> tokens;
  size_t start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const std::string* hit = nullptr;
    for (const auto& special : specials) {
      if (!special.empty() && text.compare(pos, special.size(), special) == 0 &&
          (hit == nullptr || special.size() > hit->size())) {
        hit = &special;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    for (auto& token : TokenizePlain(text.substr(start, pos - start))) {
      tokens.push_back(std::move(token));
    }
    tokens.push_back(*hit);
    pos += hit->size();
    start = pos;
  }
  for (auto& token : TokenizePlain(text.substr(start))) tokens.push_back(std::move(token));
  return tokens;
}

std::vector<int64_t> ClipTokenizer::EncodeText(std::string_view text) const {
  std::vector<int64_t> ids;
  for (const auto& token : Tokenize(text)) {
    auto it = encoder_.find(token);
    ids.push_back(it == encoder_.end() ? unk_id_ : it->second);
  }
  return ids;
}

ClipTokens ClipTokenizer::Encode(std::string_view text) const {
  std::vector<int64_t> ids = EncodeText(text);
  const size_t max_text = static_cast<size_t>(options_.max_length - 2);
  ClipTokens out;
  if (ids.size() > max_text) {
    out.num_truncated = static_cast<int64_t>(ids.size() - max_text);
    ids.resize(max_text);
  }
  out.input_ids.reserve(options_.max_length);
  out.input_ids.push_back(bos_id_);
  out.input_ids.insert(out.input_ids.end(), ids.begin(), ids.end());
  out.input_ids.push_back(eos_id_);
  out.attention_mask.assign(out.input_ids.size(), 1);
  if (options_.pad_to_max_length) {
    out.input_ids.resize(options_.max_length, pad_id_);
    out.attention_mask.resize(options_.max_length, 0);
  }
  return out;
}

std::vector<ClipTokens> ClipTokenizer::EncodeBatch(const std::vector<std::string>& texts) const {
  std::vector<ClipTokens> out;
  out.reserve(texts.size());
  for (const auto& text : texts) out.push_back(Encode(text));
  return out;
}

std::string ClipTokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string joined;
  for (int64_t id : ids) {
    if (skip_special_tokens && (id == bos_id_ || id == eos_id_ || id == pad_id_ || id == unk_id_)) {
      continue;
    }
    auto it = decoder_.find(id);
    if (it != decoder_.end()) joined += it->second;
  }
  std::string bytes;
  for (const std::string& c : Utf8Chars(joined)) {
    auto it = byte_decoder_.find(c);
    if (it != byte_decoder_.end()) bytes.push_back(static_cast<char>(it->second));
  }
  std::string text = detail::EncodeUtf8(detail::DecodeUtf8(bytes));
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kEndOfWord.size(), kEndOfWord) == 0) {
      out.push_back(' ');
      i += kEndOfWord.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return std::string(StripWhitespace(out));
}

absl::StatusOr<int64_t> ClipTokenizer::TokenId(std::string_view token) const {
  auto it = encoder_.find(std::string(token));
  if (it == encoder_.end()) {
    return absl::NotFoundError(
        absl::StrCat("token \"", std::string(token), "\" is not in the vocabulary"));
  }
  return it->second;
}

}  // namespace imginterp::clip
