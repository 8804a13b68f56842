#include "services/core/jobbus/key_value.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "tests/unit/jobbus/bus_test_fixture.h"

namespace imginterp::jobbus {
namespace {

class KeyValueTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    kv_ = OpenBucket(layout_.jobs_bucket);
    ASSERT_NE(kv_, nullptr);
  }
  std::unique_ptr<KeyValue> kv_;
};

TEST_F(KeyValueTest, CreateThenGetReturnsTheValueAndRevision) {
  auto revision = kv_->Create("job-1", "hello");
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto entry = kv_->Get("job-1");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->key, "job-1");
  EXPECT_EQ(entry->value, "hello");
  EXPECT_EQ(entry->revision, *revision);
  EXPECT_FALSE(entry->deleted);
}

TEST_F(KeyValueTest, CreatingAnExistingKeyIsAlreadyExists) {
  ASSERT_TRUE(kv_->Create("job-1", "a").ok());
  auto again = kv_->Create("job-1", "b");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(kv_->Get("job-1")->value, "a");
}

TEST_F(KeyValueTest, CreateSucceedsAgainAfterDelete) {
  ASSERT_TRUE(kv_->Create("job-1", "a").ok());
  ASSERT_TRUE(kv_->Delete("job-1").ok());
  EXPECT_TRUE(kv_->Create("job-1", "b").ok());
  EXPECT_EQ(kv_->Get("job-1")->value, "b");
}

TEST_F(KeyValueTest, UpdateWithTheCurrentRevisionSucceedsAndWithAStaleOneIsAborted) {
  auto first = kv_->Create("job-1", "v1");
  ASSERT_TRUE(first.ok());
  auto second = kv_->Update("job-1", "v2", *first);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(*second, *first);
  auto stale = kv_->Update("job-1", "v3", *first);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  EXPECT_EQ(kv_->Get("job-1")->value, "v2");
}

TEST_F(KeyValueTest, MissingAndDeletedKeysAreNotFoundNamingBucketAndKey) {
  auto missing = kv_->Get("nobody");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nobody"), absl::string_view::npos);
  EXPECT_NE(missing.status().message().find(layout_.jobs_bucket), absl::string_view::npos);

  ASSERT_TRUE(kv_->Put("gone", "x").ok());
  ASSERT_TRUE(kv_->Delete("gone").ok());
  EXPECT_EQ(kv_->Get("gone").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KeyValueTest, InvalidKeysAreRejectedBeforeReachingTheServer) {
  EXPECT_EQ(kv_->Put("has space", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv_->Put("wild*", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv_->Get("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyValueTest, KeysListsCurrentKeysOnlyAndPurgeRemovesOne) {
  auto empty = kv_->Keys();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
  ASSERT_TRUE(kv_->Put("a", "1").ok());
  ASSERT_TRUE(kv_->Put("b.c", "2").ok());
  ASSERT_TRUE(kv_->Put("d", "3").ok());
  ASSERT_TRUE(kv_->Delete("d").ok());
  ASSERT_TRUE(kv_->Purge("a").ok());
  auto keys = kv_->Keys();
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys, std::vector<std::string>{"b.c"});
}

TEST_F(KeyValueTest, WatcherSeesTheCurrentValueThenEachUpdateThenADeleteMarker) {
  auto first = kv_->Put("job-1", "v1");
  ASSERT_TRUE(first.ok());
  auto watcher = kv_->Watch("job-1");
  ASSERT_TRUE(watcher.ok()) << watcher.status();

  auto current = (*watcher)->Next(5000);
  ASSERT_TRUE(current.ok()) << current.status();
  ASSERT_TRUE(current->has_value());
  EXPECT_EQ((*current)->value, "v1");
  EXPECT_EQ((*current)->revision, *first);

  auto second = kv_->Update("job-1", "v2", *first);
  ASSERT_TRUE(second.ok());
  auto update = (*watcher)->Next(5000);
  ASSERT_TRUE(update.ok()) << update.status();
  ASSERT_TRUE(update->has_value());
  EXPECT_EQ((*update)->value, "v2");
  EXPECT_EQ((*update)->revision, *second);

  ASSERT_TRUE(kv_->Delete("job-1").ok());
  auto deleted = (*watcher)->Next(5000);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  ASSERT_TRUE(deleted->has_value());
  EXPECT_TRUE((*deleted)->deleted);
}

TEST_F(KeyValueTest, WatcherWithoutChangesTimesOutWithNullopt) {
  ASSERT_TRUE(kv_->Put("job-1", "v1").ok());
  auto watcher = kv_->Watch("job-1");
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE((*watcher)->Next(5000)->has_value());
  auto none = (*watcher)->Next(100);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

TEST_F(KeyValueTest, UpdatesOnlyWatcherSkipsTheCurrentValues) {
  ASSERT_TRUE(kv_->Put("a", "old").ok());
  auto watcher = kv_->Watch(">", /*updates_only=*/true);
  ASSERT_TRUE(watcher.ok());
  // The current value is not delivered: the initial phase ends with nothing for the caller.
  auto initial = (*watcher)->Next(500);
  ASSERT_TRUE(initial.ok()) << initial.status();
  EXPECT_FALSE(initial->has_value()) << (*initial)->key;
  ASSERT_TRUE(kv_->Put("b", "new").ok());
  auto next = (*watcher)->Next(5000);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->key, "b");
  EXPECT_EQ((*next)->value, "new");
}

TEST_F(KeyValueTest, StopWakesAWaitingNextWithCancelled) {
  auto watcher = kv_->Watch("job-1");
  ASSERT_TRUE(watcher.ok());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*watcher)->Stop();
  });
  // Waits far longer than the stopper's delay: only Stop can end it early with CANCELLED.
  auto result = (*watcher)->Next(30000);
  stopper.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_EQ((*watcher)->Next(10).status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace imginterp::jobbus
