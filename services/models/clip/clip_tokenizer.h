// CLIP's byte-level BPE tokenizer, as transformers' CLIPTokenizer (the slow, Python one) encodes:
// text normalisation, the CLIP pre-tokenisation pattern
//   <|startoftext|> | <|endoftext|> | 's 't 're 've 'm 'll 'd | \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+
// (case-insensitive), the bytes of each piece mapped to printable characters, BPE with "</w>"
// marking the end of a word, then <|startoftext|> ids <|endoftext|>, truncated to max_length
// keeping the end token and padded with pad_token_id.
//
// Normalisation follows transformers without ftfy (the default): control characters dropped,
// whitespace runs collapsed, spaces around CJK ideographs, lower-cased (no accent stripping).
// With fix_text it follows the ftfy path instead (HTML entities unescaped, whitespace cleaned,
// lower-cased), which is what OpenAI's CLIP does. Neither applies Unicode NFC; the letter/number
// and lower-case tables cover the common scripts (see unicode_text.h).
//
// Thread-safety: immutable after Create; all methods are const and may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace imginterp::clip {

struct ClipTokenizerOptions {
  // Length of every encoded sequence, special tokens included (CLIP's context length).
  int64_t max_length = 77;
  // Pad id. Unset: the id of pad_token (SD1.x and OpenAI CLIP pad with "<|endoftext|>"; SD2's
  // tokenizer pads with "!", id 0).
  std::optional<int64_t> pad_token_id;
  std::string pad_token = "<|endoftext|>";
  std::string bos_token = "<|startoftext|>";
  std::string eos_token = "<|endoftext|>";
  // Unknown BPE pieces map to this token's id.
  std::string unk_token = "<|endoftext|>";
  // Pad every sequence to max_length (transformers' padding="max_length").
  bool pad_to_max_length = true;
  // The ftfy-like normalisation instead of transformers' BasicTokenizer one (see above).
  bool fix_text = false;
};

struct ClipTokens {
  std::vector<int64_t> input_ids;       // max_length long when padded
  std::vector<int64_t> attention_mask;  // 1 for bos, text and eos; 0 for padding
  // Text tokens dropped to fit max_length.
  int64_t num_truncated = 0;
};

class ClipTokenizer {
 public:
  // vocab.json: {"token": id, ...}; merges.txt: a header line, then one "a b" merge per line in
  // rank order (transformers reads at most 48894 merges: lines 1 .. 49152-256-2 of the file).
  // INVALID_ARGUMENT naming the file for unreadable JSON, a missing special token, or a
  // max_length below 2; NOT_FOUND for a missing file.
  static absl::StatusOr<std::unique_ptr<ClipTokenizer>> Create(
      const std::string& vocab_json_path, const std::string& merges_path,
      const ClipTokenizerOptions& options = {});
  // A tokenizer folder (SD's "tokenizer/" or a transformers CLIP folder): vocab.json and
  // merges.txt inside `dir`.
  static absl::StatusOr<std::unique_ptr<ClipTokenizer>> FromFolder(
      const std::string& dir, const ClipTokenizerOptions& options = {});
  // From the contents of the two files.
  static absl::StatusOr<std::unique_ptr<ClipTokenizer>> FromStrings(
      std::string_view vocab_json, std::string_view merges,
      const ClipTokenizerOptions& options = {});

  ClipTokenizer(const ClipTokenizer&) = delete;
  ClipTokenizer& operator=(const ClipTokenizer&) = delete;

  // The BPE tokens of `text` (no special tokens added), e.g. "a photo" -> {"a</w>", "photo</w>"}.
  std::vector<std::string> Tokenize(std::string_view text) const;
  // Ids of Tokenize(text); special-token strings in the text become their ids.
  std::vector<int64_t> EncodeText(std::string_view text) const;
  // bos + EncodeText(text) (truncated to max_length - 2) + eos, padded to max_length.
  ClipTokens Encode(std::string_view text) const;
  std::vector<ClipTokens> EncodeBatch(const std::vector<std::string>& texts) const;
  // Tokens joined, "</w>" read as a space, bytes decoded (invalid UTF-8 replaced); special tokens
  // (bos, eos, pad) skipped when skip_special_tokens.
  std::string Decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  // The normalised text BPE runs on (exposed for tests).
  std::string Normalize(std::string_view text) const;
  // The pre-tokenisation pieces of already-normalised text (exposed for tests).
  std::vector<std::string> PreTokenize(std::string_view normalized) const;
  // BPE of one pre-tokenised piece given in byte-encoded form, space-separated tokens.
  std::vector<std::string> Bpe(const std::string& piece) const;

  int64_t bos_token_id() const { return bos_id_; }
  int64_t eos_token_id() const { return eos_id_; }
  int64_t pad_token_id() const { return pad_id_; }
  int64_t unk_token_id() const { return unk_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(encoder_.size()); }
  int64_t max_length() const { return options_.max_length; }
  // NOT_FOUND when the token is not in the vocabulary.
  absl::StatusOr<int64_t> TokenId(std::string_view token) const;

 private:
  explicit ClipTokenizer(const ClipTokenizerOptions& options) : options_(options) {}
  std::vector<std::string> TokenizePlain(std::string_view text) const;

  ClipTokenizerOptions options_;
  std::unordered_map<std::string, int64_t> encoder_;
  std::unordered_map<int64_t, std::string> decoder_;
  std::unordered_map<std::string, int64_t> bpe_ranks_;  // "first second" -> rank
  std::string byte_encoder_[256];                       // byte -> UTF-8 of its printable stand-in
  std::unordered_map<std::string, uint8_t> byte_decoder_;
  int64_t bos_id_ = 0;
  int64_t eos_id_ = 0;
  int64_t pad_id_ = 0;
  int64_t unk_id_ = 0;
};

}  // namespace imginterp::clip
