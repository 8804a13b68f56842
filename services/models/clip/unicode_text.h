// The bits of Unicode the CLIP tokenizer needs, without ICU: UTF-8 coding, the character classes
// of its pre-tokenisation pattern (\p{L}, \p{N}, \s), control characters, lower-casing and HTML
// entity unescaping. The letter/number/lower-case tables cover the scripts of the CLIP vocabulary
// (Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, Thai, CJK, kana, Hangul, fullwidth
// forms) rather than all of Unicode; characters outside them count as "other".
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace imginterp::clip::detail {

// Invalid or truncated sequences decode to U+FFFD, one per bad byte.
std::u32string DecodeUtf8(std::string_view text);
std::string EncodeUtf8(std::u32string_view text);
void AppendUtf8(char32_t c, std::string* out);

bool IsLetter(char32_t c);      // \p{L}
bool IsNumber(char32_t c);      // \p{N}
bool IsWhitespace(char32_t c);  // \s (Unicode White_Space)
// Python's unicodedata category "C*" except \t, \n, \r (BERT's _is_control), approximated by
// Cc, the common Cf characters and private use.
bool IsControl(char32_t c);
// Simple lower-case mapping (str.lower() for the covered scripts); U+0130 maps to "i" + U+0307.
void AppendLower(char32_t c, std::u32string* out);
bool IsCjk(char32_t c);  // BERT's _is_chinese_char

// html.unescape for named entities common in captions (&amp; &lt; &gt; &quot; &apos; &nbsp;
// &#39; ...) and numeric ones (&#NNN; &#xHH;); unknown entities are kept as they are.
std::string UnescapeHtml(std::string_view text);

}  // namespace imginterp::clip::detail
