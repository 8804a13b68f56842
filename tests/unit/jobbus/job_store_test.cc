#include "services/core/jobbus/job_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "services/core/jobbus/key_value.h"
#include "tests/unit/jobbus/bus_test_fixture.h"

namespace imginterp::jobbus {
namespace {

class JobStoreTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    kv_ = OpenBucket(layout_.jobs_bucket);
    ASSERT_NE(kv_, nullptr);
    store_ = std::make_unique<JobStore>(*kv_);
  }

  static v1::JobRecord NewJob(const std::string& id) {
    v1::JobRecord record;
    record.set_job_id(id);
    record.set_pipeline("edges-then-classify");
    record.set_state(v1::JOB_STATE_QUEUED);
    v1::StageRecord* stage = record.add_stages();
    stage->set_name("edges");
    stage->set_family("edges");
    stage->set_state(v1::STAGE_STATE_QUEUED);
    return record;
  }

  std::unique_ptr<KeyValue> kv_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, CreateThenGetRoundTripsTheRecord) {
  auto revision = store_->Create(NewJob("job-1"));
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto got = store_->Get("job-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->revision, *revision);
  EXPECT_EQ(got->record.pipeline(), "edges-then-classify");
  ASSERT_EQ(got->record.stages_size(), 1);
  EXPECT_EQ(got->record.stages(0).state(), v1::STAGE_STATE_QUEUED);
}

TEST_F(JobStoreTest, CreatingATakenIdIsAlreadyExistsAndMissingIdIsNotFound) {
  ASSERT_TRUE(store_->Create(NewJob("job-1")).ok());
  EXPECT_EQ(store_->Create(NewJob("job-1")).status().code(), absl::StatusCode::kAlreadyExists);
  auto missing = store_->Get("job-2");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("job-2"), absl::string_view::npos);
}

TEST_F(JobStoreTest, MutateWritesTheChangeAndReturnsTheNewRevision) {
  auto created = store_->Create(NewJob("job-1"));
  ASSERT_TRUE(created.ok());
  auto mutated = store_->Mutate("job-1", [](v1::JobRecord& record) -> absl::StatusOr<bool> {
    record.set_state(v1::JOB_STATE_RUNNING);
    return true;
  });
  ASSERT_TRUE(mutated.ok()) << mutated.status();
  EXPECT_GT(mutated->revision, *created);
  auto got = store_->Get("job-1");
  EXPECT_EQ(got->record.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->revision, mutated->revision);
}

TEST_F(JobStoreTest, MutateReturningFalseWritesNothing) {
  auto created = store_->Create(NewJob("job-1"));
  ASSERT_TRUE(created.ok());
  auto unchanged = store_->Mutate("job-1", [](v1::JobRecord& record) -> absl::StatusOr<bool> {
    record.set_state(v1::JOB_STATE_FAILED);
    return false;
  });
  ASSERT_TRUE(unchanged.ok()) << unchanged.status();
  EXPECT_EQ(unchanged->revision, *created);
  EXPECT_EQ(unchanged->record.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(store_->Get("job-1")->revision, *created);
}

TEST_F(JobStoreTest, MutateReturningAnErrorAbortsWithThatError) {
  ASSERT_TRUE(store_->Create(NewJob("job-1")).ok());
  auto failed = store_->Mutate("job-1", [](v1::JobRecord&) -> absl::StatusOr<bool> {
    return absl::FailedPreconditionError("job is cancelled");
  });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobStoreTest, ConcurrentMutationsFromFourThreadsNeverLoseAnIncrement) {
  ASSERT_TRUE(store_->Create(NewJob("job-1")).ok());
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  std::vector<std::thread> threads;
  std::vector<absl::Status> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread has its own connection, as separate workers would.
      auto connection = Connect();
      if (connection == nullptr) {
        errors[t] = absl::UnavailableError("no connection");
        return;
      }
      auto kv = KeyValue::Open(*connection, layout_.jobs_bucket);
      if (!kv.ok()) {
        errors[t] = kv.status();
        return;
      }
      JobStore store(**kv);
      for (int i = 0; i < kIncrements; ++i) {
        auto result = store.Mutate("job-1", [](v1::JobRecord& record) -> absl::StatusOr<bool> {
          record.mutable_stages(0)->set_attempts(record.stages(0).attempts() + 1);
          return true;
        });
        if (!result.ok()) {
          errors[t] = result.status();
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& error : errors) EXPECT_TRUE(error.ok()) << error;
  EXPECT_EQ(store_->Get("job-1")->record.stages(0).attempts(), kThreads * kIncrements);
}

TEST_F(JobStoreTest, ListReturnsLiveJobsAndSkipsDeletedOnes) {
  ASSERT_TRUE(store_->Create(NewJob("job-1")).ok());
  ASSERT_TRUE(store_->Create(NewJob("job-2")).ok());
  ASSERT_TRUE(store_->Create(NewJob("job-3")).ok());
  ASSERT_TRUE(store_->Delete("job-2").ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> ids;
  for (const VersionedRecord& record : *list) ids.push_back(record.record.job_id());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"job-1", "job-3"}));
}

TEST_F(JobStoreTest, WatchStreamsEveryRevisionAsDecodableRecords) {
  ASSERT_TRUE(store_->Create(NewJob("job-1")).ok());
  auto watcher = store_->Watch("job-1");
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  ASSERT_TRUE(store_
                  ->Mutate("job-1",
                           [](v1::JobRecord& record) -> absl::StatusOr<bool> {
                             record.set_state(v1::JOB_STATE_SUCCEEDED);
                             return true;
                           })
                  .ok());
  std::vector<v1::JobState> states;
  for (int i = 0; i < 2; ++i) {
    auto entry = (*watcher)->Next(5000);
    ASSERT_TRUE(entry.ok() && entry->has_value()) << entry.status();
    auto decoded = JobStore::Decode((*entry)->value, (*entry)->revision, (*entry)->deleted);
    ASSERT_TRUE(decoded.ok() && decoded->has_value()) << decoded.status();
    EXPECT_EQ((*decoded)->revision, (*entry)->revision);
    states.push_back((*decoded)->record.state());
  }
  EXPECT_EQ(states, (std::vector<v1::JobState>{v1::JOB_STATE_QUEUED, v1::JOB_STATE_SUCCEEDED}));
}

TEST(JobStoreDecodeTest, GarbageIsDataLossAndDeleteMarkersAreNullopt) {
  EXPECT_EQ(JobStore::Decode("\xff\xff\xff\xff", 3, false).status().code(),
            absl::StatusCode::kDataLoss);
  auto deleted = JobStore::Decode("", 4, true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->has_value());
}

}  // namespace
}  // namespace imginterp::jobbus
