#include "services/core/jobbus/bus_layout.h"

#include <gtest/gtest.h>

#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "tests/support/nats_server.h"
#include "tests/support/process.h"
#include "tests/unit/jobbus/bus_test_fixture.h"

namespace imginterp::jobbus {
namespace {

using BusLayoutTest = BusTest;

TEST_F(BusLayoutTest, EnsureBusIsIdempotentAndCreatesTheThreeBuckets) {
  // SetUp already ran EnsureBus once; a second and third call reuse what exists.
  ASSERT_TRUE(EnsureBus(*connection_, layout_).ok());
  auto second = Connect();
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(EnsureBus(*second, layout_).ok());
  for (const std::string& bucket :
       {layout_.jobs_bucket, layout_.artifacts_bucket, layout_.idempotency_bucket}) {
    EXPECT_TRUE(KeyValue::Open(*connection_, bucket).ok()) << bucket;
  }
}

TEST_F(BusLayoutTest, EnsureBusRejectsADuplicateWindowLongerThanTheTtl) {
  BusLayout layout = layout_;
  layout.duplicate_window_seconds = layout.job_ttl_seconds + 1;
  EXPECT_EQ(EnsureBus(*connection_, layout).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BusLayoutTest, ConnectionReportsTheServersMaxPayload) {
  EXPECT_EQ(connection_->MaxPayload(), 8 * 1024 * 1024);
  EXPECT_TRUE(connection_->IsConnected());
  connection_->Close();
  EXPECT_FALSE(connection_->IsConnected());
}

TEST_F(BusLayoutTest, OpeningAMissingBucketIsNotFound) {
  auto kv = KeyValue::Open(*connection_, "no_such_bucket");
  EXPECT_EQ(kv.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(kv.status().message().find("no_such_bucket"), absl::string_view::npos);
}

TEST(NatsConnectionTest, ConnectingToAClosedPortIsUnavailableAndNamesTheUrl) {
  ConnectionOptions options;
  options.url = absl::StrCat("nats://127.0.0.1:", test_support::FreeLoopbackPort());
  options.connect_timeout_ms = 500;
  auto connection = NatsConnection::Connect(options);
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(connection.status().message().find(options.url), absl::string_view::npos);
}

TEST(EnsureBusWithoutJetStreamTest, IsFailedPreconditionAskingForDashJs) {
  test_support::NatsServerOptions server_options;
  server_options.jetstream = false;
  auto server = test_support::NatsServer::Start(server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  ConnectionOptions options;
  options.url = (*server)->url();
  options.jetstream_timeout_ms = 1000;
  auto connection = NatsConnection::Connect(options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  absl::Status status = EnsureBus(**connection, BusLayout());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("-js"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace imginterp::jobbus
