// One real nats-server per test suite; every test gets its own stream, subjects and buckets
// (BusLayout with a unique prefix), so tests never see each other's tasks or keys.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "tests/support/nats_server.h"

namespace imginterp::jobbus {

class BusTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = test_support::NatsServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    static std::atomic<int> counter{0};
    const std::string id = absl::StrCat("t", ++counter);
    layout_.stream = absl::StrCat("TASKS_", id);
    layout_.subject_prefix = absl::StrCat(id, ".jobs");
    layout_.jobs_bucket = absl::StrCat(id, "_jobs");
    layout_.artifacts_bucket = absl::StrCat(id, "_artifacts");
    layout_.idempotency_bucket = absl::StrCat(id, "_idempotency");
    connection_ = Connect();
    ASSERT_NE(connection_, nullptr);
    ASSERT_TRUE(EnsureBus(*connection_, layout_).ok());
  }

  static std::unique_ptr<NatsConnection> Connect() {
    ConnectionOptions options;
    options.url = server_->url();
    options.name = "jobbus-test";
    auto connection = NatsConnection::Connect(options);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }

  std::unique_ptr<KeyValue> OpenBucket(const std::string& bucket) {
    auto kv = KeyValue::Open(*connection_, bucket);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? *std::move(kv) : nullptr;
  }

  static inline test_support::NatsServer* server_ = nullptr;
  BusLayout layout_;
  std::unique_ptr<NatsConnection> connection_;
};

}  // namespace imginterp::jobbus
