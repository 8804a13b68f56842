// Crashes and restarts: nothing is lost, nothing is recorded twice.
#include <csignal>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

using std::chrono::seconds;

v1::Job GetJob(v1::GatewayService::Stub& stub, const std::string& job_id) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  stub.GetJob(&context, request, &job);
  return job;
}

// Polls the record until `done` holds (or the timeout passes); returns the last record.
template <typename Predicate>
v1::Job WaitFor(v1::GatewayService::Stub& stub, const std::string& job_id, Predicate done,
                seconds timeout = seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job job;
  while (std::chrono::steady_clock::now() < deadline) {
    job = GetJob(stub, job_id);
    if (done(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return job;
}

std::string Submit(v1::GatewayService::Stub& stub, const std::string& pipeline, int seed) {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  request.mutable_job()->set_pipeline(pipeline);
  request.mutable_job()->mutable_image()->set_data(MakePng(96, 64, seed));
  v1::SubmitJobResponse response;
  EXPECT_TRUE(stub.SubmitJob(&context, request, &response).ok());
  return response.job_id();
}

bool Succeeded(const v1::Job& job) { return job.record().state() == v1::JOB_STATE_SUCCEEDED; }

TEST(RecoveryTest, JobSurvivesAGatewayRestart) {
  Stack stack;
  ASSERT_TRUE(stack.StartNats().ok());
  auto gateway = stack.StartGateway({"--stage_start_timeout_seconds=120"});
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const int port = (*gateway)->grpc_port;
  // No worker yet: the job waits with its stages queued.
  auto stub = stack.GatewayStub();
  const std::string job_id = Submit(*stub, "chain", 1);
  ASSERT_FALSE(job_id.empty());
  // The gateway dies abruptly; a new one on the same port takes over from the records.
  (*gateway)->child->Kill();
  (*gateway)->child->WaitExit(seconds(5));
  auto restarted = stack.StartGateway({"--stage_start_timeout_seconds=120"}, port);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  auto edges = stack.StartService("edges");
  ASSERT_TRUE(edges.ok()) << edges.status();
  stub = stack.GatewayStub();
  v1::Job job = WaitFor(*stub, job_id, Succeeded);
  EXPECT_EQ(job.record().state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  for (const auto& stage : job.record().stages()) {
    EXPECT_EQ(stage.state(), v1::STAGE_STATE_SUCCEEDED) << stage.name();
    EXPECT_EQ(stage.attempts(), 1) << stage.name();
  }
}

TEST(RecoveryTest, TaskOfAWorkerKilledMidStageIsRedeliveredAndRecordedOnce) {
  Stack stack;
  ASSERT_TRUE(stack.StartNats().ok());
  // The first worker holds every task for 30 s after marking it running; its heartbeats keep
  // the task until it dies. AckWait 2 s: after the kill the task goes to the next worker.
  auto doomed = stack.StartService(
      "edges", {"--hold_before_run_ms=30000", "--ack_wait_ms=2000", "--max_in_flight=4"});
  ASSERT_TRUE(doomed.ok()) << doomed.status();
  auto gateway = stack.StartGateway();
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  auto stub = stack.GatewayStub();
  const std::string job_id = Submit(*stub, "priors", 2);
  const std::string doomed_suffix = "/" + std::to_string((*doomed)->child->pid());
  v1::Job running = WaitFor(*stub, job_id, [&](const v1::Job& job) {
    for (const auto& stage : job.record().stages()) {
      if (stage.state() != v1::STAGE_STATE_RUNNING) return false;
      const std::string& worker = stage.worker();
      if (worker.size() < doomed_suffix.size() ||
          worker.compare(worker.size() - doomed_suffix.size(), doomed_suffix.size(),
                         doomed_suffix) != 0) {
        return false;
      }
    }
    return true;
  });
  for (const auto& stage : running.record().stages()) {
    ASSERT_EQ(stage.state(), v1::STAGE_STATE_RUNNING) << running.DebugString();
  }
  (*doomed)->child->Kill();
  auto rescuer = stack.StartService("edges", {"--ack_wait_ms=2000"});
  ASSERT_TRUE(rescuer.ok()) << rescuer.status();
  v1::Job job = WaitFor(*stub, job_id, Succeeded);
  ASSERT_EQ(job.record().state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  const std::string rescuer_suffix = "/" + std::to_string((*rescuer)->child->pid());
  for (const auto& stage : job.record().stages()) {
    EXPECT_GE(stage.attempts(), 2) << "stage " << stage.name() << " was delivered once";
    EXPECT_TRUE(stage.worker().find(rescuer_suffix) != std::string::npos) << stage.worker();
    EXPECT_TRUE(stage.has_result());
    EXPECT_EQ(stage.state(), v1::STAGE_STATE_SUCCEEDED);
  }
  // Later revisions do not change the recorded result: one result per stage.
  std::this_thread::sleep_for(seconds(3));
  v1::Job later = GetJob(*stub, job_id);
  for (int i = 0; i < job.record().stages_size(); ++i) {
    EXPECT_EQ(later.record().stages(i).result().sha256(), job.record().stages(i).result().sha256());
    EXPECT_EQ(later.record().stages(i).attempts(), job.record().stages(i).attempts());
  }
}

}  // namespace
}  // namespace imginterp::integration
