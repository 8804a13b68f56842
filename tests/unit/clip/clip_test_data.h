// Where clip_test finds the reference data (tests/data/reference, copied from ../shared/reference).
#pragma once

#include <string>

namespace imginterp::clip::test_data {

inline const std::string kRef = IMGINTERP_REFERENCE_DIR;

}  // namespace imginterp::clip::test_data
