#include "services/clip/lru_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace imginterp::clip_service {
namespace {

TEST(LruCache, EvictsTheLeastRecentlyUsedEntryWhenFull) {
  LruCache<std::string, int> cache(2);
  cache.Insert("a", 1);
  cache.Insert("b", 2);
  ASSERT_NE(cache.Find("a"), nullptr);  // "b" is now the least recently used
  cache.Insert("c", 3);
  EXPECT_EQ(cache.Find("b"), nullptr);
  ASSERT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(*cache.Find("a"), 1);
  ASSERT_NE(cache.Find("c"), nullptr);
  EXPECT_EQ(*cache.Find("c"), 3);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(LruCache, InsertReplacesAnExistingKeyWithoutGrowing) {
  LruCache<std::string, int> cache(2);
  cache.Insert("a", 1);
  cache.Insert("a", 5);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(*cache.Find("a"), 5);
}

TEST(LruCache, CapacityZeroStoresNothing) {
  LruCache<std::string, int> cache(0);
  cache.Insert("a", 1);
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace imginterp::clip_service
