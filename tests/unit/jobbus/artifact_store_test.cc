#include "services/core/jobbus/artifact_store.h"

#include <gtest/gtest.h>

#include <random>

#include "services/core/jobbus/key_value.h"
#include "tests/unit/jobbus/bus_test_fixture.h"

namespace imginterp::jobbus {
namespace {

constexpr int64_t kInlineLimit = 64 * 1024;
constexpr int64_t kChunkBytes = 512 * 1024;

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return bytes;
}

class ArtifactStoreTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    kv_ = OpenBucket(layout_.artifacts_bucket);
    ASSERT_NE(kv_, nullptr);
    store_ = std::make_unique<ArtifactStore>(*kv_, kInlineLimit, kChunkBytes);
  }
  std::unique_ptr<KeyValue> kv_;
  std::unique_ptr<ArtifactStore> store_;
};

TEST(Sha256HexTest, MatchesTheKnownDigestOfAbc) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(ArtifactStoreTest, SmallPayloadStaysInlineAndRoundTrips) {
  const std::string data = RandomBytes(1000, 1);
  auto ref = store_->Put("job-1", "input", "image/png", data);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->location_case(), v1::ArtifactRef::kInlineData);
  EXPECT_EQ(ref->size(), 1000);
  EXPECT_EQ(ref->content_type(), "image/png");
  EXPECT_EQ(ref->sha256(), Sha256Hex(data));
  auto keys = kv_->Keys();
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
  auto got = store_->Get("job-1", *ref);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
}

TEST_F(ArtifactStoreTest, LargePayloadIsChunkedAndRoundTrips) {
  const std::string data = RandomBytes(3 * 1024 * 1024, 2);
  auto ref = store_->Put("job-1", "result", "image/png", data);
  ASSERT_TRUE(ref.ok()) << ref.status();
  ASSERT_EQ(ref->location_case(), v1::ArtifactRef::kChunks);
  EXPECT_EQ(ref->chunks(), 6);  // 3 MB in 512 KB chunks.
  EXPECT_EQ(ref->size(), static_cast<int64_t>(data.size()));
  auto chunk = kv_->Get("job-1.result.5");
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_EQ(chunk->value.size(), static_cast<size_t>(kChunkBytes));
  auto got = store_->Get("job-1", *ref);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
}

TEST_F(ArtifactStoreTest, ACorruptedChunkIsDataLoss) {
  const std::string data = RandomBytes(kChunkBytes * 2 + 10, 3);
  auto ref = store_->Put("job-1", "result", "image/png", data);
  ASSERT_TRUE(ref.ok());
  std::string chunk = kv_->Get("job-1.result.1")->value;
  chunk[100] ^= 0x01;
  ASSERT_TRUE(kv_->Put("job-1.result.1", chunk).ok());
  EXPECT_EQ(store_->Get("job-1", *ref).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ArtifactStoreTest, AMissingLaterChunkIsDataLoss) {
  auto ref = store_->Put("job-1", "result", "image/png", RandomBytes(kChunkBytes * 2 + 10, 4));
  ASSERT_TRUE(ref.ok());
  ASSERT_TRUE(kv_->Purge("job-1.result.2").ok());
  EXPECT_EQ(store_->Get("job-1", *ref).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ArtifactStoreTest, DeleteJobRemovesAllItsChunksAndNoOtherJobs) {
  auto mine = store_->Put("job-1", "result", "image/png", RandomBytes(kChunkBytes * 2, 5));
  auto other = store_->Put("job-10", "result", "image/png", RandomBytes(kChunkBytes * 2, 6));
  ASSERT_TRUE(mine.ok() && other.ok());
  ASSERT_TRUE(store_->DeleteJob("job-1").ok());
  auto keys = kv_->Keys();
  ASSERT_TRUE(keys.ok());
  for (const std::string& key : *keys) EXPECT_EQ(key.rfind("job-10.", 0), 0u) << key;
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(store_->Get("job-1", *mine).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get("job-10", *other).ok());
}

TEST_F(ArtifactStoreTest, InvalidNamesAreRejected) {
  EXPECT_EQ(store_->Put("job-1", "bad.name", "x", "data").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("job.1", "name", "x", "data").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ArtifactStoreTest, AnInlineRefWithAWrongDigestIsDataLoss) {
  auto ref = store_->Put("job-1", "input", "image/png", "payload");
  ASSERT_TRUE(ref.ok());
  ref->set_inline_data("PAYLOAD");
  EXPECT_EQ(store_->Get("job-1", *ref).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace imginterp::jobbus
