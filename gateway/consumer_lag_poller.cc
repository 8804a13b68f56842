#include "gateway/consumer_lag_poller.h"

#include <utility>

#include "gateway/gateway_metrics.h"
#include "services/core/common/logging.h"
#include "services/core/jobbus/task_queue.h"

namespace imginterp::gateway {

ConsumerLagPoller::ConsumerLagPoller(jobbus::NatsConnection& connection, jobbus::BusLayout layout,
                                     std::vector<std::string> families, GatewayMetrics& metrics,
                                     absl::Duration interval)
    : connection_(connection),
      layout_(std::move(layout)),
      families_(std::move(families)),
      metrics_(metrics),
      failing_(families_.size(), false) {
  const auto period = absl::ToChronoMilliseconds(interval);
  thread_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      PollOnce();
      lock.lock();
      wake_.wait_for(lock, period, [this] { return stopping_; });
    }
  });
}

ConsumerLagPoller::~ConsumerLagPoller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

int ConsumerLagPoller::PollOnce() {
  std::lock_guard<std::mutex> lock(poll_mu_);
  int read = 0;
  for (size_t i = 0; i < families_.size(); ++i) {
    absl::StatusOr<jobbus::ConsumerLag> lag =
        jobbus::ReadConsumerLag(connection_, layout_, families_[i]);
    if (lag.ok()) {
      metrics_.SetConsumerLag(families_[i], *lag);
      failing_[i] = false;
      ++read;
    } else if (!absl::IsNotFound(lag.status()) && !failing_[i]) {
      IMGINTERP_LOG(Warning) << "bus lag of family '" << families_[i]
                             << "' unavailable: " << lag.status();
      failing_[i] = true;
    }
  }
  return read;
}

}  // namespace imginterp::gateway
