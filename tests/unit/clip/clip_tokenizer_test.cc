#include "services/models/clip/clip_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace imginterp::clip {
namespace {

using ::testing::ElementsAre;
using Ids = std::vector<int64_t>;

// A hand-made vocabulary. Merges in rank order (the first line is the header and is skipped):
//   0 "h e", 1 "l l", 2 "he ll", 3 "hell o</w>", 4 "l o", 5 "lo w</w>", 6 "a b</w>", 7 "a a",
//   8 "' s</w>"
constexpr char kMerges[] =
    "#version: 0.2\n"
    "h e\n"
    "l l\n"
    "he ll\n"
    "hell o</w>\n"
    "l o\n"
    "lo w</w>\n"
    "a b</w>\n"
    "a a\n"
    "' s</w>\n";

constexpr char kVocab[] = R"({
  "hello</w>": 5, "low</w>": 6, "lo": 7, "l</w>": 8, "he": 9, "l": 10, "a": 11, "ab</w>": 12,
  "!</w>": 13, "'s</w>": 14, "1</w>": 15, "2</w>": 16, "!": 17, "a</w>": 18, "&</w>": 19,
  "b</w>": 20, "aa": 21, "<|startoftext|>": 100, "<|endoftext|>": 101
})";

std::unique_ptr<ClipTokenizer> Make(ClipTokenizerOptions options = {}) {
  auto tokenizer = ClipTokenizer::FromStrings(kVocab, kMerges, options);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(tokenizer).value();
}

TEST(ClipTokenizer, MergesWordsInRankOrderWithEndOfWordMarker) {
  auto t = Make();
  EXPECT_THAT(t->Tokenize("hello"), ElementsAre("hello</w>"));
  EXPECT_THAT(t->Tokenize("low"), ElementsAre("low</w>"));
  // "l o" merges, but nothing joins "lo" with the word-final "l</w>".
  EXPECT_THAT(t->Tokenize("lol"), ElementsAre("lo", "l</w>"));
  // "l l" cannot merge with the word-final "l</w>": the marker is part of the symbol.
  EXPECT_THAT(t->Tokenize("hell"), ElementsAre("he", "l", "l</w>"));
  // "a b</w>" (rank 6) wins over "a a" (rank 7) although "a a" comes first in the word.
  EXPECT_THAT(t->Tokenize("aab"), ElementsAre("a", "ab</w>"));
  EXPECT_THAT(t->Tokenize("a"), ElementsAre("a</w>"));
}

TEST(ClipTokenizer, SkipsTheFirstLineOfMerges) {
  // Without a header, the first merge ("h e") is the one dropped, as in transformers.
  auto t = ClipTokenizer::FromStrings(kVocab, std::string(kMerges).substr(14));
  ASSERT_TRUE(t.ok());
  EXPECT_THAT((*t)->Tokenize("hello"), ElementsAre("h", "e", "ll", "o</w>"));
}

TEST(ClipTokenizer, PreTokenizesLettersSingleDigitsContractionsAndOtherRuns) {
  auto t = Make();
  EXPECT_THAT(t->PreTokenize("hello's 12!! a,b"),
              ElementsAre("hello", "'s", "1", "2", "!!", "a", ",", "b"));
  EXPECT_THAT(t->PreTokenize("x<|endoftext|>y"), ElementsAre("x", "<|endoftext|>", "y"));
  EXPECT_THAT(t->PreTokenize("don't 'x"), ElementsAre("don", "'t", "'", "x"));
  EXPECT_THAT(t->Tokenize("hello's 12!!"),
              ElementsAre("hello</w>", "'s</w>", "1</w>", "2</w>", "!", "!</w>"));
}

TEST(ClipTokenizer, LowerCasesAndCleansWhitespace) {
  auto t = Make();
  EXPECT_EQ(t->Normalize("  HELLO \t\n  Low\x01  "), "hello low");
  EXPECT_EQ(t->EncodeText("  HELLO \t\n  Low  "), (Ids{5, 6}));
  EXPECT_EQ(t->Normalize("\xC3\x89T\xC3\x89"), "\xC3\xA9t\xC3\xA9");  // ÉTÉ -> été
  // CJK ideographs become words of their own (transformers' BasicTokenizer).
  EXPECT_THAT(t->PreTokenize(t->Normalize("\xE6\x97\xA5\xE6\x9C\xAC")),
              ElementsAre("\xE6\x97\xA5", "\xE6\x9C\xAC"));
}

TEST(ClipTokenizer, FixTextUnescapesHtml) {
  ClipTokenizerOptions options;
  options.fix_text = true;
  auto t = Make(options);
  EXPECT_EQ(t->Normalize("A &amp; B&#33;  "), "a & b!");
  EXPECT_EQ(t->EncodeText("A &amp; B"), (Ids{18, 19, 20}));
  EXPECT_EQ(Make()->Normalize("A &amp; B"), "a &amp; b");
}

TEST(ClipTokenizer, MapsBytesToPrintableStandIns) {
  auto t = Make();
  // "é" is C3 A9; both bytes are printable and stand for themselves (U+00C3, U+00A9).
  EXPECT_THAT(t->Tokenize("\xC3\xA9"), ElementsAre("\xC3\x83", "\xC2\xA9</w>"));
  // The control byte 0x7F is dropped by normalisation; "~" (0x7E) stands for itself.
  EXPECT_THAT(t->Tokenize("~"), ElementsAre("~</w>"));
}

TEST(ClipTokenizer, UnknownTokensBecomeUnk) {
  auto t = Make();
  EXPECT_EQ(t->EncodeText("zz"), (Ids{101, 101}));  // "z", "z</w>"
}

TEST(ClipTokenizer, SpecialTokenStringsInTextBecomeTheirIds) {
  auto t = Make();
  EXPECT_EQ(t->EncodeText("hello<|endoftext|>low"), (Ids{5, 101, 6}));
  EXPECT_EQ(t->EncodeText("<|startoftext|>low"), (Ids{100, 6}));
}

TEST(ClipTokenizer, EncodeAddsBosEosAndPadsWithEndToken) {
  ClipTokenizerOptions options;
  options.max_length = 8;
  auto t = Make(options);
  auto tokens = t->Encode("low hello");
  EXPECT_EQ(tokens.input_ids, (Ids{100, 6, 5, 101, 101, 101, 101, 101}));
  EXPECT_EQ(tokens.attention_mask, (Ids{1, 1, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(tokens.num_truncated, 0);
  EXPECT_EQ(t->pad_token_id(), 101);
}

TEST(ClipTokenizer, PadIdIsConfigurable) {
  ClipTokenizerOptions options;
  options.max_length = 5;
  options.pad_token_id = 0;
  auto tokens = Make(options)->Encode("low");
  EXPECT_EQ(tokens.input_ids, (Ids{100, 6, 101, 0, 0}));
}

TEST(ClipTokenizer, TruncatesToMaxLengthKeepingTheEndToken) {
  ClipTokenizerOptions options;
  options.max_length = 5;
  auto tokens = Make(options)->Encode("hello low hello low");
  EXPECT_EQ(tokens.input_ids, (Ids{100, 5, 6, 5, 101}));
  EXPECT_EQ(tokens.attention_mask, (Ids{1, 1, 1, 1, 1}));
  EXPECT_EQ(tokens.num_truncated, 1);
}

TEST(ClipTokenizer, DefaultLengthIs77) {
  auto t = Make();
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "low ";
  auto tokens = t->Encode(long_text);
  ASSERT_EQ(tokens.input_ids.size(), 77u);
  EXPECT_EQ(tokens.input_ids.front(), 100);
  EXPECT_EQ(tokens.input_ids[75], 6);
  EXPECT_EQ(tokens.input_ids.back(), 101);
  EXPECT_EQ(tokens.num_truncated, 25);
}

TEST(ClipTokenizer, DecodeJoinsWordsAndSkipsSpecialTokens) {
  auto t = Make();
  EXPECT_EQ(t->Decode(t->Encode("Hello  LOW lol").input_ids), "hello low lol");
  EXPECT_EQ(t->Decode({100, 6, 101}, /*skip_special_tokens=*/false),
            "<|startoftext|>low <|endoftext|>");
}

TEST(ClipTokenizer, RejectsBadInputsWithActionableErrors) {
  auto no_eos = ClipTokenizer::FromStrings(R"({"<|startoftext|>": 0})", kMerges);
  ASSERT_FALSE(no_eos.ok());
  EXPECT_NE(no_eos.status().message().find("<|endoftext|>"), std::string::npos);
  EXPECT_FALSE(ClipTokenizer::FromStrings("{not json", kMerges).ok());
  ClipTokenizerOptions tiny;
  tiny.max_length = 1;
  EXPECT_FALSE(ClipTokenizer::FromStrings(kVocab, kMerges, tiny).ok());
  auto missing = ClipTokenizer::FromFolder("/nonexistent/tokenizer");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace imginterp::clip
