// Stage tasks on the work-queue stream: the gateway publishes them, workers pull them through
// a durable consumer per family (shared by all replicas of the family).
//
// Delivery is at least once: a worker acks after it has stored the stage result, naks with a
// delay on a retryable error, terms a task that can never succeed, and sends in-progress
// heartbeats while a long stage runs so AckWait does not expire under it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "imginterp/v1/bus.pb.h"
#include "services/core/jobbus/bus_layout.h"

typedef struct __natsMsg natsMsg;
typedef struct __natsSubscription natsSubscription;

namespace imginterp::jobbus {

class NatsConnection;

// Header carrying the job's trace id on every task.
inline constexpr char kTraceIdHeader[] = "Imginterp-Trace-Id";

// Thread-safe.
class TaskPublisher {
 public:
  TaskPublisher(NatsConnection& connection, BusLayout layout);
  // Publishes to "<prefix>.<task.family>" with Nats-Msg-Id "<job_id>/<stage>" and the trace id
  // header, waiting for the stream's ack. Publishing the same task twice within the duplicate
  // window stores it once.
  absl::Status Publish(const v1::StageTask& task);

 private:
  NatsConnection& connection_;
  BusLayout layout_;
};

// One delivered task. Ack/Nak/Term/InProgress are thread-safe; the first of Ack, Nak and Term
// settles the delivery, later ones (and InProgress after it) are no-ops. Ack waits for the
// server's confirmation; Nak, Term and InProgress are sent without waiting. A delivery destroyed
// unsettled is redelivered by the server once AckWait expires.
class TaskDelivery {
 public:
  ~TaskDelivery();
  TaskDelivery(const TaskDelivery&) = delete;
  TaskDelivery& operator=(const TaskDelivery&) = delete;

  const v1::StageTask& task() const { return task_; }
  // 1 on the first delivery, 2+ on redeliveries.
  uint64_t delivery_count() const { return delivery_count_; }
  const std::string& trace_id() const { return trace_id_; }

  absl::Status Ack();
  absl::Status Nak(int64_t delay_ms);
  absl::Status Term();
  absl::Status InProgress();

 private:
  friend class TaskConsumer;
  TaskDelivery() = default;
  // Acks go out through the message's subscription, so the delivery shares it with its
  // consumer: a delivery may outlive the TaskConsumer that fetched it.
  std::shared_ptr<natsSubscription> sub_;
  natsMsg* msg_ = nullptr;
  v1::StageTask task_;
  uint64_t delivery_count_ = 1;
  std::string trace_id_;
  std::mutex mu_;
  bool settled_ = false;  // Guarded by mu_.
};

struct ConsumerOptions {
  std::string family;
  // Redelivery after this long without ack or heartbeat.
  int64_t ack_wait_ms = 30000;
  // Deliveries before the server gives up on a task (the worker records the failure on the
  // last one).
  int max_deliver = 5;
  // Tasks a worker may hold unacked at once (across all its fetches).
  int max_ack_pending = 256;
};

// Owned by one thread (Fetch is not re-entrant); deliveries may be settled from any thread.
class TaskConsumer {
 public:
  // Creates or binds the durable consumer "<DurableFor(family)>" on the family's subject.
  static absl::StatusOr<std::unique_ptr<TaskConsumer>> Create(NatsConnection& connection,
                                                              const BusLayout& layout,
                                                              const ConsumerOptions& options);
  ~TaskConsumer();
  TaskConsumer(const TaskConsumer&) = delete;
  TaskConsumer& operator=(const TaskConsumer&) = delete;

  // Up to `max_tasks` tasks, waiting at most `timeout_ms` for the first; an empty vector on
  // timeout. A message that is not a StageTask is termed and skipped (logged).
  absl::StatusOr<std::vector<std::unique_ptr<TaskDelivery>>> Fetch(int max_tasks,
                                                                   int64_t timeout_ms);
  int max_deliver() const { return options_.max_deliver; }

 private:
  TaskConsumer(std::shared_ptr<natsSubscription> sub, ConsumerOptions options)
      : sub_(std::move(sub)), options_(std::move(options)) {}
  std::shared_ptr<natsSubscription> sub_;
  ConsumerOptions options_;
};

// How far a family's workers are behind, from the durable consumer's info.
struct ConsumerLag {
  // Tasks in the stream not yet delivered to any worker: the family's queue depth.
  uint64_t pending = 0;
  // Delivered and not yet acked: tasks being worked on (or held by a worker that died, until
  // AckWait expires).
  int64_t ack_pending = 0;
  // Unacked tasks that have been delivered more than once.
  int64_t redelivered = 0;
  // Pull requests waiting for tasks: idle worker capacity.
  int64_t waiting = 0;
};

// Reads the family's consumer info from JetStream. NOT_FOUND when the consumer does not exist
// yet (no worker of the family has started); UNAVAILABLE when the server does not answer.
absl::StatusOr<ConsumerLag> ReadConsumerLag(NatsConnection& connection, const BusLayout& layout,
                                            const std::string& family);

}  // namespace imginterp::jobbus
