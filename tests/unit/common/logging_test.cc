#include "services/core/common/logging.h"

#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

TEST(LoggingTest, ScopedTraceIdNestsAndRestores) {
  EXPECT_EQ(CurrentTraceId(), "");
  {
    ScopedTraceId outer("aaaa");
    EXPECT_EQ(CurrentTraceId(), "aaaa");
    {
      ScopedTraceId inner("bbbb");
      EXPECT_EQ(CurrentTraceId(), "bbbb");
    }
    EXPECT_EQ(CurrentTraceId(), "aaaa");
  }
  EXPECT_EQ(CurrentTraceId(), "");
}

TEST(LoggingTest, LineCarriesTraceId) {
  testing::internal::CaptureStderr();
  {
    ScopedTraceId trace("0123456789abcdef");
    IMGINTERP_LOG(Info) << "hello";
  }
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("trace=0123456789abcdef"), std::string::npos);
  EXPECT_NE(out.find("hello"), std::string::npos);
}

TEST(LoggingTest, NewTraceIdsDiffer) {
  const std::string a = NewTraceId();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, NewTraceId());
}

}  // namespace
}  // namespace imginterp::common
