// Server-streamed calls on the callback API: a family's long work (a denoising loop, tiles)
// reports WorkItem::progress(step, total); each report becomes one `Update` message written to
// the client in order, and the final response becomes the last one. Cancelling the call (or the
// client going away) makes WorkItem::cancelled() true, so the model stops early, and the call
// ends with the model's status (CANCELLED).
//
// A family's typed service forwards with ServiceCore::ServeStreaming, giving two formatters:
//   progress(step, total, Update*) and result(const Message& response, Update*).
//
// Thread-safety: the reactor's state is guarded by mu_; progress and completion arrive on the
// model's executor thread, write completions on gRPC's threads. Writes are never started while
// holding mu_, and at most one write is outstanding.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/server_callback.h"
#include "services/core/rpc/grpc_status.h"

namespace grpc {
class CallbackServerContext;
}

namespace imginterp::service {

class ModelHost;

template <typename Update>
struct StreamFormat {
  // Fills the message sent after a progress report (step of total).
  std::function<void(int step, int total, Update* update)> progress;
  // Fills the last message from the finished response.
  std::function<void(const google::protobuf::Message& response, Update* update)> result;
};

namespace detail {

// Submits `request` to the model it names, as ServiceCore::Serve does, with the given
// callbacks. `done` is called exactly once.
void SubmitStreaming(ModelHost& host, grpc::CallbackServerContext* context,
                     const google::protobuf::Message* request, google::protobuf::Message* response,
                     std::function<bool()> cancelled, std::function<void(int, int)> progress,
                     std::function<void(const absl::Status&)> done);

// Owns itself: deleted by gRPC's OnDone, which comes after Finish, which comes after the model
// called `done`, after which nothing refers to the reactor.
template <typename Update>
class StreamingReactor final : public grpc::ServerWriteReactor<Update> {
 public:
  StreamingReactor(std::unique_ptr<google::protobuf::Message> response, StreamFormat<Update> format)
      : response_(std::move(response)), format_(std::move(format)) {}

  void Start(ModelHost& host, grpc::CallbackServerContext* context,
             const google::protobuf::Message* request) {
    SubmitStreaming(
        host, context, request, response_.get(), [this] { return cancelled_.load(); },
        [this](int step, int total) { OnProgress(step, total); },
        [this](const absl::Status& status) { OnFinished(status); });
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      // The stream is broken (client gone): drop what is queued, keep waiting for the model.
      if (!ok) pending_.clear(), broken_ = true;
    }
    Pump();
  }
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override { delete this; }

 private:
  void OnProgress(int step, int total) {
    if (!format_.progress) return;
    Update update;
    format_.progress(step, total, &update);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (broken_) return;
      pending_.push_back(std::move(update));
    }
    Pump();
  }

  void OnFinished(const absl::Status& status) {
    Update last;
    if (status.ok()) format_.result(*response_, &last);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (status.ok() && !broken_) pending_.push_back(std::move(last));
      status_ = status;
      finished_ = true;
    }
    Pump();
  }

  // Starts the next write, or Finish once the model is done and every write has completed.
  void Pump() {
    bool write = false;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finish_sent_) return;
      if (!pending_.empty()) {
        in_flight_ = std::move(pending_.front());
        pending_.pop_front();
        writing_ = write = true;
      } else if (finished_) {
        finish_sent_ = finish = true;
      }
    }
    if (write) this->StartWrite(&in_flight_);
    if (finish) this->Finish(rpc::ToGrpcStatus(status_));
  }

  const std::unique_ptr<google::protobuf::Message> response_;
  const StreamFormat<Update> format_;
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  std::deque<Update> pending_;  // guarded by mu_
  Update in_flight_;            // guarded by mu_ until handed to StartWrite
  bool writing_ = false;        // guarded by mu_
  bool broken_ = false;         // guarded by mu_
  bool finished_ = false;       // guarded by mu_
  bool finish_sent_ = false;    // guarded by mu_
  absl::Status status_;         // guarded by mu_; read after finished_
};

}  // namespace detail
}  // namespace imginterp::service
