#include "services/core/service/model_host.h"

#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "imginterp/v1/classify.pb.h"
#include "inference/grpc_service.pb.h"
#include "prometheus/registry.h"
#include "services/core/metrics/serving_metrics.h"

namespace imginterp::service {
namespace {

// A family whose models answer with their own name and the request's top_k, so a test can tell
// which model served which caller. Model "broken" fails to load; "gate" waits for a signal.
class EchoFamily final : public FamilyHandler {
 public:
  std::string family() const override { return "echo"; }
  std::string description() const override { return "test family"; }
  const google::protobuf::Message& request_prototype() const override {
    return v1::ClassifyRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::ClassifyResponse::default_instance();
  }
  std::vector<v1::ModelConfig> BuiltinModels() const override {
    std::vector<v1::ModelConfig> out;
    for (const char* name : {"alpha", "broken", "gate"}) {
      v1::ModelConfig config;
      config.set_name(name);
      config.set_backend("builtin");
      config.set_max_queue_size(2);
      out.push_back(config);
    }
    return out;
  }
  std::string default_model() const override { return "alpha"; }

  class EchoModel final : public ExecuteModel {
   public:
    EchoModel(std::string name, std::shared_future<void> gate, std::promise<void>* entered)
        : name_(std::move(name)), gate_(std::move(gate)), entered_(entered) {}

   protected:
    absl::Status Execute(WorkItem& item) override {
      if (name_ == "gate") {
        if (!signalled_) entered_->set_value();
        signalled_ = true;
        gate_.wait();
      }
      const auto& request = static_cast<const v1::ClassifyRequest&>(*item.request);
      if (request.top_k() < 0) return absl::InvalidArgumentError("negative top_k");
      auto* score = static_cast<v1::ClassifyResponse*>(item.response)->add_classes();
      score->set_name(name_);
      score->set_class_id(request.top_k());
      return absl::OkStatus();
    }

   private:
    std::string name_;
    std::shared_future<void> gate_;
    std::promise<void>* entered_;
    bool signalled_ = false;
  };

  absl::StatusOr<std::unique_ptr<ModelInstance>> CreateInstance(
      const ModelLoadInfo& info, std::unique_ptr<model::ModelRunner>) const override {
    if (info.name == "broken") return absl::DataLossError("weights are corrupt");
    return std::make_unique<EchoModel>(info.name, gate, &gate_entered);
  }
  absl::Status ToKServe(const google::protobuf::Message&,
                        inference::ModelInferResponse*) const override {
    return absl::OkStatus();
  }
  void DescribeKServeOutputs(inference::ModelMetadataResponse*) const override {}

  std::promise<void> open_gate;
  std::shared_future<void> gate = open_gate.get_future().share();
  mutable std::promise<void> gate_entered;
};

struct Outcome {
  absl::Status status;
  int64_t version = 0;
};

class ModelHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = ModelHost::Create({}, family_, metrics_);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    ASSERT_TRUE(host_->LoadAll().ok());
  }
  void TearDown() override {
    family_.open_gate.set_value();
    host_->Stop();
  }

  std::future<Outcome> Run(const std::string& model, int64_t version, int top_k,
                           v1::ClassifyResponse* response, v1::ClassifyRequest* request) {
    request->set_top_k(top_k);
    auto promise = std::make_shared<std::promise<Outcome>>();
    Submission submission;
    submission.model = model;
    submission.version = version;
    submission.request = request;
    submission.response = response;
    submission.done = [promise](const absl::Status& status, int64_t v) {
      promise->set_value({status, v});
    };
    host_->Submit(std::move(submission));
    return promise->get_future();
  }

  EchoFamily family_;
  prometheus::Registry registry_;
  metrics::ServingMetrics metrics_{registry_, "echo"};
  std::unique_ptr<ModelHost> host_;
};

TEST_F(ModelHostTest, ServesNamedAndDefaultModels) {
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  Outcome outcome = Run("", 0, 7, &response, &request).get();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.version, 1);
  ASSERT_EQ(response.classes_size(), 1);
  EXPECT_EQ(response.classes(0).name(), "alpha");
  EXPECT_EQ(response.classes(0).class_id(), 7);
}

TEST_F(ModelHostTest, UnknownModelAndVersionAreNotFoundWithNames) {
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  Outcome unknown = Run("gamma", 0, 1, &response, &request).get();
  EXPECT_EQ(unknown.status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status.message().find("gamma"), std::string::npos);
  EXPECT_NE(unknown.status.message().find("alpha"), std::string::npos);
  Outcome version = Run("alpha", 9, 1, &response, &request).get();
  EXPECT_EQ(version.status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(version.status.message().find("9"), std::string::npos);
}

TEST_F(ModelHostTest, ModelThatFailedToLoadIsUnavailableWithReasonWhileOthersServe) {
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  Outcome broken = Run("broken", 0, 1, &response, &request).get();
  EXPECT_EQ(broken.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(broken.status.message().find("weights are corrupt"), std::string::npos);
  bool listed = false;
  for (const auto& info : host_->ListModels()) {
    if (info.name() == "broken") {
      listed = true;
      EXPECT_EQ(info.state(), v1::MODEL_STATE_UNAVAILABLE);
      EXPECT_NE(info.state_reason().find("corrupt"), std::string::npos);
    }
    if (info.name() == "alpha") {
      EXPECT_EQ(info.state(), v1::MODEL_STATE_READY);
    }
  }
  EXPECT_TRUE(listed);
  EXPECT_TRUE(host_->AnyReady());
}

TEST_F(ModelHostTest, ModelErrorsReachOnlyTheirCaller) {
  v1::ClassifyRequest bad_request, good_request;
  v1::ClassifyResponse bad_response, good_response;
  auto bad = Run("alpha", 0, -1, &bad_response, &bad_request);
  auto good = Run("alpha", 0, 4, &good_response, &good_request);
  EXPECT_EQ(bad.get().status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(good.get().status.ok());
  EXPECT_EQ(good_response.classes(0).class_id(), 4);
}

TEST_F(ModelHostTest, FullQueueIsResourceExhausted) {
  // "gate" blocks its executor; its queue holds 2, so of 4 calls one runs, two wait, one is
  // refused.
  std::vector<v1::ClassifyRequest> requests(4);
  std::vector<v1::ClassifyResponse> responses(4);
  std::vector<std::future<Outcome>> outcomes;
  outcomes.push_back(Run("gate", 0, 0, &responses[0], &requests[0]));
  // Wait until the first call has left the queue and blocks the executor.
  family_.gate_entered.get_future().wait();
  for (int i = 1; i < 4; ++i) outcomes.push_back(Run("gate", 0, i, &responses[i], &requests[i]));
  Outcome refused = outcomes[3].get();
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted);
  family_.open_gate.set_value();
  family_.open_gate = std::promise<void>();  // TearDown opens this fresh one.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(outcomes[i].get().status.ok());
}

}  // namespace
}  // namespace imginterp::service
