#include "services/models/diffusion/scheduler.h"

#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/scheduler_ddim.h"
#include "services/models/diffusion/scheduler_dpm_solver.h"
#include "services/models/diffusion/scheduler_euler.h"
#include "services/models/diffusion/scheduler_pndm.h"

namespace imginterp::diffusion {

Scheduler::Scheduler(NoiseScheduleOptions schedule, at::Tensor alphas_cumprod)
    : schedule_(std::move(schedule)), alphas_cumprod_(std::move(alphas_cumprod)) {}

absl::StatusOr<at::Tensor> Scheduler::ScaleModelInput(const at::Tensor& sample,
                                                      double /*timestep*/) {
  return sample;
}

void Scheduler::Reset() {
  step_index_.reset();
  begin_index_.reset();
}

absl::Status Scheduler::CheckReady(const char* what) const {
  if (num_inference_steps_ == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(std::string(Name()), "::", what, " called before SetTimesteps()"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Scheduler::IndexForTimestep(double timestep) const {
  int first = -1;
  for (size_t i = 0; i < timesteps_.size(); ++i) {
    if (timesteps_[i] != timestep) continue;
    if (first >= 0) return static_cast<int>(i);  // the second match
    first = static_cast<int>(i);
  }
  if (first < 0) {
    return absl::InvalidArgumentError(absl::StrCat("timestep ", timestep, " is not one of the ",
                                                   timesteps_.size(), " timesteps set by ",
                                                   std::string(Name()), "::SetTimesteps()"));
  }
  return first;
}

absl::StatusOr<int> Scheduler::CurrentStepIndex(double timestep) {
  if (!step_index_.has_value()) {
    if (begin_index_.has_value()) {
      step_index_ = *begin_index_;
    } else {
      IMGINTERP_ASSIGN_OR_RETURN(step_index_, IndexForTimestep(timestep));
    }
  }
  if (*step_index_ < 0 || *step_index_ >= static_cast<int>(timesteps_.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat(std::string(Name()), " is at step ", *step_index_, " of ", timesteps_.size(),
                     "; call SetTimesteps() or Reset() to start another run"));
  }
  return *step_index_;
}

namespace {

using Json = nlohmann::json;

// Reads `key` into `out` when present and not null; INVALID_ARGUMENT on a type mismatch.
template <typename T>
absl::Status Read(const Json& config, const char* key, T& out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler config field \"", key, "\" has the wrong type: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status ReadOptional(const Json& config, const char* key, std::optional<double>& out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  double value = 0;
  IMGINTERP_RETURN_IF_ERROR(Read(config, key, value));
  out = value;
  return absl::OkStatus();
}

// Reads a string field that must be one of `choices` (diffusers' spelling).
template <typename E>
absl::Status ReadEnum(const Json& config, const char* key,
                      std::initializer_list<std::pair<const char*, E>> choices, E& out) {
  std::string value;
  IMGINTERP_RETURN_IF_ERROR(Read(config, key, value));
  if (value.empty()) return absl::OkStatus();
  std::vector<std::string> names;
  for (const auto& [name, e] : choices) {
    if (value == name) {
      out = e;
      return absl::OkStatus();
    }
    names.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat("scheduler config field \"", key, "\" is \"",
                                                 value,
                                                 "\"; supported: ", absl::StrJoin(names, ", ")));
}

absl::Status ReadSpacing(const Json& config, TimestepSpacing& out) {
  return ReadEnum<TimestepSpacing>(config, "timestep_spacing",
                                   {{"leading", TimestepSpacing::kLeading},
                                    {"trailing", TimestepSpacing::kTrailing},
                                    {"linspace", TimestepSpacing::kLinspace}},
                                   out);
}

// Rejects a feature the port does not implement rather than silently ignoring it.
absl::Status RejectTrue(const Json& config, const char* key) {
  bool value = false;
  IMGINTERP_RETURN_IF_ERROR(Read(config, key, value));
  if (value) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler config field \"", key, "\" = true is not supported"));
  }
  return absl::OkStatus();
}

absl::Status ReadSchedule(const Json& config, NoiseScheduleOptions& out) {
  IMGINTERP_RETURN_IF_ERROR(Read(config, "num_train_timesteps", out.num_train_timesteps));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "beta_start", out.beta_start));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "beta_end", out.beta_end));
  IMGINTERP_RETURN_IF_ERROR(
      ReadEnum<BetaSchedule>(config, "beta_schedule",
                             {{"linear", BetaSchedule::kLinear},
                              {"scaled_linear", BetaSchedule::kScaledLinear},
                              {"squaredcos_cap_v2", BetaSchedule::kSquaredCosCapV2}},
                             out.beta_schedule));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "trained_betas", out.trained_betas));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "rescale_betas_zero_snr", out.rescale_betas_zero_snr));
  IMGINTERP_RETURN_IF_ERROR(
      ReadEnum<PredictionType>(config, "prediction_type",
                               {{"epsilon", PredictionType::kEpsilon},
                                {"v_prediction", PredictionType::kVPrediction},
                                {"sample", PredictionType::kSample}},
                               out.prediction_type));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "steps_offset", out.steps_offset));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDdim(const Json& config) {
  DDIMOptions options;
  IMGINTERP_RETURN_IF_ERROR(ReadSchedule(config, options.schedule));
  IMGINTERP_RETURN_IF_ERROR(ReadSpacing(config, options.timestep_spacing));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "clip_sample", options.clip_sample));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "clip_sample_range", options.clip_sample_range));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "set_alpha_to_one", options.set_alpha_to_one));
  IMGINTERP_RETURN_IF_ERROR(RejectTrue(config, "thresholding"));
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, DDIMScheduler::Create(options));
  return std::unique_ptr<Scheduler>(std::move(scheduler));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakePndm(const Json& config) {
  PNDMOptions options;
  IMGINTERP_RETURN_IF_ERROR(ReadSchedule(config, options.schedule));
  // PNDMScheduler has no zero-SNR rescaling; a shared config's flag does not apply to it.
  options.schedule.rescale_betas_zero_snr = false;
  IMGINTERP_RETURN_IF_ERROR(ReadSpacing(config, options.timestep_spacing));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "skip_prk_steps", options.skip_prk_steps));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "set_alpha_to_one", options.set_alpha_to_one));
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, PNDMScheduler::Create(options));
  return std::unique_ptr<Scheduler>(std::move(scheduler));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeEuler(const Json& config, bool karras) {
  EulerOptions options;
  IMGINTERP_RETURN_IF_ERROR(ReadSchedule(config, options.schedule));
  IMGINTERP_RETURN_IF_ERROR(ReadSpacing(config, options.timestep_spacing));
  IMGINTERP_RETURN_IF_ERROR(ReadEnum<SigmaInterpolation>(
      config, "interpolation_type",
      {{"linear", SigmaInterpolation::kLinear}, {"log_linear", SigmaInterpolation::kLogLinear}},
      options.interpolation_type));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "use_karras_sigmas", options.use_karras_sigmas));
  IMGINTERP_RETURN_IF_ERROR(ReadOptional(config, "sigma_min", options.sigma_min));
  IMGINTERP_RETURN_IF_ERROR(ReadOptional(config, "sigma_max", options.sigma_max));
  std::string timestep_type = "discrete";
  IMGINTERP_RETURN_IF_ERROR(Read(config, "timestep_type", timestep_type));
  if (timestep_type != "discrete") {
    return absl::InvalidArgumentError(absl::StrCat("scheduler config field \"timestep_type\" is \"",
                                                   timestep_type, "\"; supported: discrete"));
  }
  if (karras) options.use_karras_sigmas = true;
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, EulerDiscreteScheduler::Create(options));
  return std::unique_ptr<Scheduler>(std::move(scheduler));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeEulerAncestral(const Json& config) {
  EulerAncestralOptions options;
  IMGINTERP_RETURN_IF_ERROR(ReadSchedule(config, options.schedule));
  IMGINTERP_RETURN_IF_ERROR(ReadSpacing(config, options.timestep_spacing));
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, EulerAncestralDiscreteScheduler::Create(options));
  return std::unique_ptr<Scheduler>(std::move(scheduler));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDpmSolver(const Json& config, bool karras) {
  DPMSolverMultistepOptions options;
  IMGINTERP_RETURN_IF_ERROR(ReadSchedule(config, options.schedule));
  IMGINTERP_RETURN_IF_ERROR(ReadSpacing(config, options.timestep_spacing));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "solver_order", options.solver_order));
  IMGINTERP_RETURN_IF_ERROR(
      ReadEnum<DpmAlgorithm>(config, "algorithm_type",
                             {{"dpmsolver++", DpmAlgorithm::kDpmSolverPlusPlus},
                              {"sde-dpmsolver++", DpmAlgorithm::kSdeDpmSolverPlusPlus},
                              // diffusers maps the DEIS name onto dpmsolver++.
                              {"deis", DpmAlgorithm::kDpmSolverPlusPlus}},
                             options.algorithm_type));
  IMGINTERP_RETURN_IF_ERROR(ReadEnum<DpmSolverType>(config, "solver_type",
                                                    {{"midpoint", DpmSolverType::kMidpoint},
                                                     {"heun", DpmSolverType::kHeun},
                                                     // diffusers maps UniPC/DEIS names to midpoint.
                                                     {"logrho", DpmSolverType::kMidpoint},
                                                     {"bh1", DpmSolverType::kMidpoint},
                                                     {"bh2", DpmSolverType::kMidpoint}},
                                                    options.solver_type));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "lower_order_final", options.lower_order_final));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "euler_at_final", options.euler_at_final));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "use_karras_sigmas", options.use_karras_sigmas));
  IMGINTERP_RETURN_IF_ERROR(Read(config, "use_lu_lambdas", options.use_lu_lambdas));
  IMGINTERP_RETURN_IF_ERROR(
      ReadEnum<FinalSigmas>(config, "final_sigmas_type",
                            {{"zero", FinalSigmas::kZero}, {"sigma_min", FinalSigmas::kSigmaMin}},
                            options.final_sigmas_type));
  std::optional<double> lambda_min_clipped;
  IMGINTERP_RETURN_IF_ERROR(ReadOptional(config, "lambda_min_clipped", lambda_min_clipped));
  if (lambda_min_clipped.has_value()) options.lambda_min_clipped = *lambda_min_clipped;
  IMGINTERP_RETURN_IF_ERROR(RejectTrue(config, "thresholding"));
  std::string variance_type;
  IMGINTERP_RETURN_IF_ERROR(Read(config, "variance_type", variance_type));
  if (!variance_type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("scheduler config field \"variance_type\" is \"",
                                                   variance_type, "\"; only null is supported"));
  }
  if (karras) options.use_karras_sigmas = true;
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, DPMSolverMultistepScheduler::Create(options));
  return std::unique_ptr<Scheduler>(std::move(scheduler));
}

}  // namespace

std::vector<std::string> SupportedSchedulerClasses() {
  return {"DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
          "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"};
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(std::string_view config_json,
                                                         std::string_view override_name) {
  Json config = Json::parse(config_json.begin(), config_json.end(), /*cb=*/nullptr,
                            /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError("scheduler config is not a JSON object");
  }
  std::string name(override_name);
  if (name.empty()) IMGINTERP_RETURN_IF_ERROR(Read(config, "_class_name", name));
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "scheduler config has no \"_class_name\" and no scheduler name was given");
  }
  try {
    if (name == "DDIMScheduler" || name == "ddim") return MakeDdim(config);
    if (name == "PNDMScheduler" || name == "pndm" || name == "plms") {
      if (name == "plms") config["skip_prk_steps"] = true;
      return MakePndm(config);
    }
    if (name == "EulerDiscreteScheduler" || name == "euler") return MakeEuler(config, false);
    if (name == "EulerAncestralDiscreteScheduler" || name == "euler_a") {
      return MakeEulerAncestral(config);
    }
    if (name == "DPMSolverMultistepScheduler" || name == "dpmpp_2m") {
      return MakeDpmSolver(config, false);
    }
    if (name == "dpmpp_2m_karras") return MakeDpmSolver(config, true);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building scheduler ", name, " failed: ", e.what()));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "scheduler \"", name,
      "\" is not supported; supported: ", absl::StrJoin(SupportedSchedulerClasses(), ", "),
      " (aliases: ddim, pndm, plms, euler, euler_a, dpmpp_2m, dpmpp_2m_karras)"));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeSchedulerFromFile(const std::string& path,
                                                                 std::string_view override_name) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read scheduler config ", path));
  std::stringstream text;
  text << in.rdbuf();
  return MakeScheduler(text.str(), override_name);
}

}  // namespace imginterp::diffusion
