// Polls JetStream for how far each family's workers are behind (pending, ack-pending,
// redelivered, waiting) and publishes it as the gateway's imginterp_bus_consumer_* gauges.
//
// The gateway does this rather than each worker because it is the one process that knows every
// family its pipelines use, including families none of whose workers is running — exactly the
// case where the queue grows.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "services/core/jobbus/bus_layout.h"

namespace imginterp::jobbus {
class NatsConnection;
}  // namespace imginterp::jobbus

namespace imginterp::gateway {

class GatewayMetrics;

// Polls on its own thread from construction until destruction. `connection` and `metrics`
// must outlive it.
class ConsumerLagPoller {
 public:
  ConsumerLagPoller(jobbus::NatsConnection& connection, jobbus::BusLayout layout,
                    std::vector<std::string> families, GatewayMetrics& metrics,
                    absl::Duration interval);
  ~ConsumerLagPoller();
  ConsumerLagPoller(const ConsumerLagPoller&) = delete;
  ConsumerLagPoller& operator=(const ConsumerLagPoller&) = delete;

  // One round over every family; returns how many families had a consumer to read. A family
  // without a consumer yet is skipped; other errors are logged once per family until it reads
  // again, so a NATS outage does not flood the log.
  int PollOnce();

 private:
  jobbus::NatsConnection& connection_;
  const jobbus::BusLayout layout_;
  const std::vector<std::string> families_;
  GatewayMetrics& metrics_;
  // Serialises rounds: the thread's and any caller's of PollOnce.
  std::mutex poll_mu_;
  std::vector<bool> failing_;  // Per family; guarded by poll_mu_.
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // Guarded by mu_.
  std::thread thread_;
};

}  // namespace imginterp::gateway
