#include "services/core/jobbus/task_queue.h"

#include <nats/nats.h>

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/nats_status.h"

namespace imginterp::jobbus {
namespace {

constexpr int64_t kNanosPerMilli = 1000 * 1000;

using MsgPtr = std::unique_ptr<natsMsg, detail::NatsDeleter<natsMsg, natsMsg_Destroy>>;

// Families become a subject token and part of a durable name: no '.', wildcards or spaces.
absl::Status ValidateFamily(const std::string& family) {
  bool valid = !family.empty() && std::all_of(family.begin(), family.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("family '", family, "' is invalid: use only [A-Za-z0-9_-], at least one"));
  }
  return absl::OkStatus();
}

std::string DescribeTask(const v1::StageTask& task) {
  return absl::StrCat("task ", task.job_id(), "/", task.stage(), " (", task.family(), ")");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TaskPublisher

TaskPublisher::TaskPublisher(NatsConnection& connection, BusLayout layout)
    : connection_(connection), layout_(std::move(layout)) {}

absl::Status TaskPublisher::Publish(const v1::StageTask& task) {
  IMGINTERP_RETURN_IF_ERROR(ValidateFamily(task.family()));
  if (task.job_id().empty() || task.stage().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a stage task needs a job_id and a stage (got '",
                                                   task.job_id(), "', '", task.stage(), "')"));
  }
  std::string payload;
  if (!task.SerializeToString(&payload)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", DescribeTask(task)));
  }
  const int64_t max_payload = connection_.MaxPayload();
  if (static_cast<int64_t>(payload.size()) > max_payload || payload.size() > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        DescribeTask(task), " is ", payload.size(), " bytes; the server's max_payload is ",
        max_payload, ": put large images in the ArtifactStore so they are chunked"));
  }
  const std::string subject = layout_.SubjectFor(task.family());
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, payload.data(),
                                static_cast<int>(payload.size()));
  if (s != NATS_OK) return detail::NatsError(s, absl::StrCat("building ", DescribeTask(task)));
  MsgPtr msg(raw);
  if (!task.trace_id().empty()) {
    s = natsMsgHeader_Set(msg.get(), kTraceIdHeader, task.trace_id().c_str());
    if (s != NATS_OK) return detail::NatsError(s, "setting the trace id header");
  }
  const std::string msg_id = absl::StrCat(task.job_id(), "/", task.stage());
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = msg_id.c_str();
  jsPubAck* ack = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  s = js_PublishMsg(&ack, connection_.js(), msg.get(), &options, &js_error);
  if (s != NATS_OK) {
    return detail::NatsError(
        s, absl::StrCat("publishing ", DescribeTask(task), " to '", subject, "'"), js_error);
  }
  // A duplicate ack means the stream already holds this task: the publish is done either way.
  if (ack != nullptr && ack->Duplicate) {
    IMGINTERP_LOG(Debug) << DescribeTask(task) << " was already published";
  }
  jsPubAck_Destroy(ack);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// TaskDelivery

TaskDelivery::~TaskDelivery() {
  // Unsettled deliveries are left to the server, which redelivers them after AckWait.
  natsMsg_Destroy(msg_);
}

absl::Status TaskDelivery::Ack() {
  std::lock_guard<std::mutex> lock(mu_);
  if (settled_) return absl::OkStatus();
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = natsMsg_AckSync(msg_, nullptr, &js_error);
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("acking ", DescribeTask(task_)), js_error);
  }
  settled_ = true;
  return absl::OkStatus();
}

absl::Status TaskDelivery::Nak(int64_t delay_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (settled_) return absl::OkStatus();
  natsStatus s =
      delay_ms > 0 ? natsMsg_NakWithDelay(msg_, delay_ms, nullptr) : natsMsg_Nak(msg_, nullptr);
  if (s != NATS_OK) return detail::NatsError(s, absl::StrCat("naking ", DescribeTask(task_)));
  settled_ = true;
  return absl::OkStatus();
}

absl::Status TaskDelivery::Term() {
  std::lock_guard<std::mutex> lock(mu_);
  if (settled_) return absl::OkStatus();
  natsStatus s = natsMsg_Term(msg_, nullptr);
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("terminating ", DescribeTask(task_)));
  }
  settled_ = true;
  return absl::OkStatus();
}

absl::Status TaskDelivery::InProgress() {
  std::lock_guard<std::mutex> lock(mu_);
  if (settled_) return absl::OkStatus();
  natsStatus s = natsMsg_InProgress(msg_, nullptr);
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("extending AckWait of ", DescribeTask(task_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConsumerLag> ReadConsumerLag(NatsConnection& connection, const BusLayout& layout,
                                            const std::string& family) {
  IMGINTERP_RETURN_IF_ERROR(ValidateFamily(family));
  const std::string durable = layout.DurableFor(family);
  jsConsumerInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetConsumerInfo(&info, connection.js(), layout.stream.c_str(),
                                          durable.c_str(), nullptr, &js_error);
  if (s != NATS_OK) {
    if (js_error == JSConsumerNotFoundErr || js_error == JSStreamNotFoundErr) {
      return absl::NotFoundError(absl::StrCat("no consumer '", durable, "' on stream '",
                                              layout.stream, "' yet (no ", family,
                                              " worker has started)"));
    }
    return detail::NatsError(s, absl::StrCat("reading consumer '", durable, "'"), js_error);
  }
  ConsumerLag lag;
  lag.pending = info->NumPending;
  lag.ack_pending = info->NumAckPending;
  lag.redelivered = info->NumRedelivered;
  lag.waiting = info->NumWaiting;
  jsConsumerInfo_Destroy(info);
  return lag;
}

// ---------------------------------------------------------------------------------------------
// TaskConsumer

absl::StatusOr<std::unique_ptr<TaskConsumer>> TaskConsumer::Create(NatsConnection& connection,
                                                                   const BusLayout& layout,
                                                                   const ConsumerOptions& options) {
  IMGINTERP_RETURN_IF_ERROR(ValidateFamily(options.family));
  if (options.ack_wait_ms <= 0 || options.max_ack_pending <= 0 || options.max_deliver == 0 ||
      options.max_deliver < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consumer options for family '", options.family, "' are invalid: ack_wait_ms=",
        options.ack_wait_ms, " and max_ack_pending=", options.max_ack_pending,
        " must be positive, max_deliver=", options.max_deliver, " positive or -1 (unlimited)"));
  }
  const std::string durable = layout.DurableFor(options.family);
  const std::string subject = layout.SubjectFor(options.family);

  jsConsumerConfig config;
  jsConsumerConfig_Init(&config);
  config.Durable = durable.c_str();
  config.FilterSubject = subject.c_str();
  config.DeliverPolicy = js_DeliverAll;
  config.AckPolicy = js_AckExplicit;
  config.AckWait = options.ack_wait_ms * kNanosPerMilli;
  config.MaxDeliver = options.max_deliver;
  config.MaxAckPending = options.max_ack_pending;

  // Create the durable explicitly (so unsubscribing never deletes it); when it exists with other
  // settings (a worker deployed with a new AckWait), update it to ours.
  jsConsumerInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s =
      js_AddConsumer(&info, connection.js(), layout.stream.c_str(), &config, nullptr, &js_error);
  if (s != NATS_OK) {
    const std::string what =
        absl::StrCat("creating consumer '", durable, "' on stream '", layout.stream, "'");
    if (detail::IsJetStreamUnavailable(s, js_error)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": the NATS server has no JetStream; start nats-server with -js"));
    }
    if (js_error == JSStreamNotFoundErr) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": the stream does not exist; call EnsureBus first"));
    }
    absl::Status create_error = detail::NatsError(s, what, js_error);
    js_error = static_cast<jsErrCode>(0);
    s = js_UpdateConsumer(&info, connection.js(), layout.stream.c_str(), &config, nullptr,
                          &js_error);
    if (s != NATS_OK) {
      absl::Status update_error = detail::NatsError(s, "updating it", js_error);
      return absl::Status(create_error.code(),
                          absl::StrCat(create_error.message(), "; ", update_error.message()));
    }
    IMGINTERP_LOG(Info) << "updated consumer " << durable
                        << " to ack_wait_ms=" << options.ack_wait_ms
                        << " max_deliver=" << options.max_deliver
                        << " max_ack_pending=" << options.max_ack_pending;
  }
  jsConsumerInfo_Destroy(info);

  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = layout.stream.c_str();
  sub_options.Consumer = durable.c_str();
  sub_options.ManualAck = true;
  natsSubscription* sub = nullptr;
  js_error = static_cast<jsErrCode>(0);
  s = js_PullSubscribe(&sub, connection.js(), subject.c_str(), durable.c_str(), nullptr,
                       &sub_options, &js_error);
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("binding to consumer '", durable, "'"), js_error);
  }
  std::shared_ptr<natsSubscription> shared(sub, natsSubscription_Destroy);
  return std::unique_ptr<TaskConsumer>(new TaskConsumer(std::move(shared), options));
}

TaskConsumer::~TaskConsumer() = default;

absl::StatusOr<std::vector<std::unique_ptr<TaskDelivery>>> TaskConsumer::Fetch(int max_tasks,
                                                                               int64_t timeout_ms) {
  if (max_tasks <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tasks is ", max_tasks, "; fetch at least one task"));
  }
  natsMsgList list{nullptr, 0};
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = natsSubscription_Fetch(&list, sub_.get(), max_tasks,
                                        std::max<int64_t>(timeout_ms, 1), &js_error);
  std::vector<std::unique_ptr<TaskDelivery>> deliveries;
  if (s != NATS_OK && s != NATS_TIMEOUT) {
    natsMsgList_Destroy(&list);
    return detail::NatsError(s, absl::StrCat("fetching tasks for family '", options_.family, "'"),
                             js_error);
  }
  deliveries.reserve(list.Count);
  for (int i = 0; i < list.Count; ++i) {
    MsgPtr msg(list.Msgs[i]);
    list.Msgs[i] = nullptr;
    if (msg == nullptr) continue;
    std::unique_ptr<TaskDelivery> delivery(new TaskDelivery());
    uint64_t stream_sequence = 0;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg.get()) == NATS_OK) {
      delivery->delivery_count_ = meta->NumDelivered;
      stream_sequence = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    const char* data = natsMsg_GetData(msg.get());
    const int length = natsMsg_GetDataLength(msg.get());
    bool parsed = delivery->task_.ParseFromArray(data, length) &&
                  !delivery->task_.job_id().empty() && !delivery->task_.stage().empty();
    if (!parsed) {
      IMGINTERP_LOG(Warning) << "terminating a message of " << length << " bytes on '"
                             << natsMsg_GetSubject(msg.get()) << "' (stream sequence "
                             << stream_sequence << "): it is not a StageTask";
      natsMsg_Term(msg.get(), nullptr);
      continue;
    }
    const char* trace_id = nullptr;
    if (natsMsgHeader_Get(msg.get(), kTraceIdHeader, &trace_id) == NATS_OK && trace_id != nullptr) {
      delivery->trace_id_ = trace_id;
    } else {
      delivery->trace_id_ = delivery->task_.trace_id();
    }
    delivery->sub_ = sub_;
    delivery->msg_ = msg.release();
    deliveries.push_back(std::move(delivery));
  }
  natsMsgList_Destroy(&list);
  return deliveries;
}

}  // namespace imginterp::jobbus
