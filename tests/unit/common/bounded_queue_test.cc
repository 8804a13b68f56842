#include "services/core/common/bounded_queue.h"

#include <thread>

#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

TEST(BoundedQueueTest, RefusesWhenFullAndKeepsOrder) {
  BoundedQueue<int> queue(2);
  int a = 1, b = 2, c = 3;
  EXPECT_TRUE(queue.TryPush(a));
  EXPECT_TRUE(queue.TryPush(b));
  EXPECT_FALSE(queue.TryPush(c));
  EXPECT_EQ(c, 3);
  EXPECT_EQ(*queue.Pop(), 1);
  EXPECT_EQ(*queue.Pop(), 2);
}

TEST(BoundedQueueTest, CloseDrainsThenWakesConsumers) {
  BoundedQueue<int> queue(4);
  int a = 5;
  queue.TryPush(a);
  queue.Close();
  int b = 6;
  EXPECT_FALSE(queue.TryPush(b));
  EXPECT_EQ(*queue.Pop(), 5);
  EXPECT_FALSE(queue.Pop().has_value());
}

TEST(BoundedQueueTest, PopUntilTimesOutEmpty) {
  BoundedQueue<int> queue(1);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(queue.PopUntil(start + std::chrono::milliseconds(20)).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
}

TEST(BoundedQueueTest, ConsumerThreadReceivesItemPushedLater) {
  BoundedQueue<int> queue(1);
  std::optional<int> got;
  std::thread consumer([&] { got = queue.Pop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  int v = 42;
  ASSERT_TRUE(queue.TryPush(v));
  consumer.join();
  EXPECT_EQ(got, 42);
}

}  // namespace
}  // namespace imginterp::common
