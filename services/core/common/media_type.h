// The media type of an image file, from its name: what a client sets in imginterp.v1.Image
// (media_type) when it sends a file. The services sniff the bytes anyway; the type is a hint.
//
// Stateless: thread-safe.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace imginterp::common {

// "image/png", "image/jpeg", "image/webp" or "image/bmp" by the extension of `path` (any case);
// "" for any other extension or none.
std::string ImageMediaTypeOf(absl::string_view path);

}  // namespace imginterp::common
