// generation_bench: where the time of one Stable Diffusion 1.5 + ControlNet generation goes, with
// full-size random weights, through the library the generate service serves
// (generation::StableDiffusionPipeline), on the CPU, fp32, guidance 7.5 (UNet batch 2).
//
// It writes (once; reused while complete) a diffusers folder from the sd15 reference configs with
// every parameter N(0, 0.02) (uninitialised memory's NaNs and denormals distort timing), loads it
// as the service does, times N steps at 256^2 and 512^2 with the pose ControlNet (extrapolated to
// 20 steps, checked by one real 20-step run at 256^2) and one CLIP ranking, and reports images per
// hour per worker. benchmarks/README.md explains the rows; --help lists the flags.
//
// It re-executes itself with OPENBLAS_NUM_THREADS=1 (the services' setting) unless that is set,
// and writes the folder in a child process so that the reported peak RSS is the serving process's.
// Needs ~7.5 GiB of RAM and 5.4 GiB of disk; progress goes to stderr, the report to stdout.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "benchmarks/diffusion/bench_util.h"
#include "benchmarks/diffusion/random_sd15_folder.h"
#include "benchmarks/load/loadgen/machine_description.h"
#include "services/core/common/flags.h"
#include "services/core/common/status_macros.h"
#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_model.h"
#include "services/models/clip/clip_tokenizer.h"
#include "services/models/diffusion/scheduler.h"
#include "services/models/generation/stable_diffusion.h"
#include "services/models/nn/caching_cpu_allocator.h"

extern char** environ;

namespace imginterp::generation {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bench::PeakRssGiB;
using nlohmann::json;

constexpr char kPrompt[] = "a dancer in a red dress on a stage, spotlight, photo";

constexpr char kDescription[] =
    "Where the time of one SD1.5 + pose ControlNet generation goes (text encoding, denoising, "
    "ControlNet share, VAE decode), plus a CLIP ranking and images per hour per worker, with "
    "full-size random weights written once into --work_dir (5.4 GB). Run from the repository "
    "root; the report goes to stdout at the end.";

// The tiny-sd15 tokenizer of the model store (deploy/models/fetch-models.sh writes it).
std::string DefaultTokenizerDir() {
  const char* store = std::getenv("IMGINTERP_MODEL_STORE");
  const char* home = std::getenv("HOME");
  const std::string root = store != nullptr ? store
                                            : std::string(home != nullptr ? home : ".") +
                                                  "/.cache/image-interpreter/models";
  return root + "/generate/tiny-sd15/1/tokenizer";
}

struct Flags {
  std::string work_dir = IMGINTERP_BENCH_WORK_DIR;
  std::string config_dir = "tests/data/reference/diffusion/configs/sd15";
  std::string clip_config = "tests/data/reference/clip/configs/clip_vit_base_patch32.json";
  std::string tokenizer_dir = DefaultTokenizerDir();
  std::string json_path;
  int threads = 2;
  int steps = 3;
  int full_steps = 20;
  int warmup = 1;
  int clip_repeats = 3;
  bool skip_512 = false;
  bool skip_real_run = false;
  bool write_only = false;  // internal: the child that writes the folder
};

double Seconds(Clock::time_point begin) {
  return std::chrono::duration<double>(Clock::now() - begin).count();
}

// User + system CPU time of this process (all threads).
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// The 1-, 5- and 15-minute load averages: "3.77 4.31 3.50".
std::string LoadAverage() {
  std::string one, five, fifteen;
  std::ifstream("/proc/loadavg") >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// Runs this binary again with --write_only; the writer's memory stays out of our peak RSS.
absl::Status WriteFolderInChild(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string write_only = "--write_only";
  args.push_back(write_only.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args.data(), environ) != 0) {
    return absl::InternalError("cannot start the folder writer (posix_spawn /proc/self/exe)");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError("writing the random-weight folder failed (see above)");
  }
  return absl::OkStatus();
}

struct RunRow {
  std::string name;
  int size = 0;
  int steps = 0;
  GenerationTimings timings;
  double total_seconds = 0;
  double per_eval = 0;
  double full_seconds = 0;  // extrapolated to --full_steps (or measured, for a full run)
  double cores_used = 0;    // CPU seconds / wall seconds: below --threads when the CPU is shared
  double peak_rss = 0;
  json ToJson() const {
    return {{"name", name},
            {"size", size},
            {"steps", steps},
            {"unet_evaluations", timings.steps_run},
            {"text_encoder_seconds", timings.text_encoder_seconds},
            {"denoise_seconds", timings.denoise_seconds},
            {"controlnet_seconds", timings.controlnet_seconds},
            {"seconds_per_evaluation", per_eval},
            {"vae_decode_seconds", timings.vae_decode_seconds},
            {"total_seconds", total_seconds},
            {"full_steps_seconds", full_seconds},
            {"cores_used", cores_used},
            {"peak_rss_gib", peak_rss}};
  }
};

GenerationRequest MakeRequest(int size, int steps) {
  GenerationRequest request;
  request.prompt = kPrompt;
  request.negative_prompt = "blurry, low quality";
  request.width = request.height = size;
  request.num_inference_steps = steps;
  request.guidance_scale = 7.5;
  request.seed = 42;
  // A synthetic OpenPose-like map: a few bright limbs on black (content does not affect timing).
  at::Tensor control = torch::zeros({1, 3, size, size});
  control.index_put_({0, 0, torch::indexing::Slice(size / 4, 3 * size / 4), size / 2}, 1.0);
  control.index_put_({0, 1, size / 3, torch::indexing::Slice(size / 4, 3 * size / 4)}, 1.0);
  request.controls.push_back({"pose", control});
  return request;
}

struct ClipTiming {
  std::string name;  // the config's file name
  int64_t image_size = 0;
  double image_seconds = 0;  // preprocessing + image tower for 4 images
  double text_seconds = 0;   // tokenising + text tower for 1 prompt
  double score_seconds = 0;  // cosines, logit scale, sort
  double peak_rss = 0;
  double Total() const { return image_seconds + text_seconds + score_seconds; }
};

// One ranking as the clip service does it (4 candidates; the generate pipeline ranks 3 generations
// plus the source photo): images through the vision tower, the prompt through the text tower,
// cosines. Mean of --clip_repeats after one warm-up.
absl::StatusOr<ClipTiming> TimeClipRanking(const Flags& flags,
                                           const std::vector<at::Tensor>& images) {
  IMGINTERP_ASSIGN_OR_RETURN(const clip::ClipConfig config,
                             clip::ClipConfig::FromFile(flags.clip_config));
  clip::ClipTokenizerOptions tokenizer_options;
  tokenizer_options.max_length = std::min<int64_t>(77, config.text.max_position_embeddings);
  IMGINTERP_ASSIGN_OR_RETURN(
      const auto tokenizer,
      clip::ClipTokenizer::FromFolder(flags.work_dir + "/tokenizer", tokenizer_options));
  torch::NoGradGuard no_grad;
  clip::ClipModel model(config);
  for (at::Tensor p : model->parameters()) p.normal_(0, 0.02);
  model->eval();
  ClipTiming timing;
  timing.name = fs::path(flags.clip_config).stem().string();
  const int64_t crop = timing.image_size = config.vision.image_size;
  const at::Tensor mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}).view({1, 3, 1, 1});
  const at::Tensor stdev = torch::tensor({0.26862954, 0.26130258, 0.27577711}).view({1, 3, 1, 1});
  for (int i = 0; i <= flags.clip_repeats; ++i) {  // the first pass is a warm-up
    auto start = Clock::now();
    std::vector<at::Tensor> pixels;
    for (size_t k = 0; k < 4; ++k) {  // square images: the resize is the resize + crop
      pixels.push_back(torch::nn::functional::interpolate(
          images[k % images.size()], torch::nn::functional::InterpolateFuncOptions()
                                         .size(std::vector<int64_t>{crop, crop})
                                         .mode(torch::kBicubic)
                                         .align_corners(false)));
    }
    const at::Tensor image_embeds =
        clip::L2Normalize(model->GetImageFeatures((torch::cat(pixels) - mean) / stdev));
    const double image_pass = Seconds(start);
    start = Clock::now();
    const clip::ClipTokens tokens = tokenizer->Encode(kPrompt);
    const at::Tensor text_embeds = clip::L2Normalize(
        model->GetTextFeatures(torch::tensor(tokens.input_ids).unsqueeze(0),
                               torch::tensor(tokens.attention_mask).unsqueeze(0)));
    const double text_pass = Seconds(start);
    start = Clock::now();
    const at::Tensor scores =
        torch::matmul(image_embeds, text_embeds.t()).squeeze(1) * model->logit_scale.exp();
    [[maybe_unused]] const at::Tensor order = torch::argsort(scores, 0, /*descending=*/true);
    const double score_pass = Seconds(start);
    if (i == 0) continue;
    timing.image_seconds += image_pass / flags.clip_repeats;
    timing.text_seconds += text_pass / flags.clip_repeats;
    timing.score_seconds += score_pass / flags.clip_repeats;
  }
  timing.peak_rss = PeakRssGiB();
  return timing;
}

absl::Status Run(const Flags& flags, int argc, char** argv) {
  const std::string load_at_start = LoadAverage();
  torch::set_num_threads(flags.threads);
  nn::InstallCachingCpuAllocatorFromEnvironment();  // as the generate service does
  const fs::path dir = flags.work_dir;
  double write_seconds = 0;
  if (!bench::RandomSd15FolderIsComplete(dir)) {
    std::printf("writing the random-weight SD1.5 folder to %s ...\n", dir.c_str());
    std::fflush(stdout);
    const auto begin = Clock::now();
    IMGINTERP_RETURN_IF_ERROR(WriteFolderInChild(argc, argv));
    write_seconds = Seconds(begin);
  }
  IMGINTERP_ASSIGN_OR_RETURN(
      const auto scheduler,
      diffusion::MakeSchedulerFromFile((dir / "scheduler" / "scheduler_config.json").string()));
  IMGINTERP_RETURN_IF_ERROR(scheduler->SetTimesteps(flags.full_steps));
  const int full_evals = static_cast<int>(scheduler->Timesteps().size());

  const auto load_begin = Clock::now();
  PipelineLoadOptions load_options;
  load_options.controlnets = {{"pose", bench::kRandomSd15ControlNetFolder}};
  IMGINTERP_ASSIGN_OR_RETURN(const auto pipeline,
                             StableDiffusionPipeline::Load(dir.string(), load_options));
  const double load_seconds = Seconds(load_begin);
  const double load_rss = PeakRssGiB();

  std::vector<RunRow> rows;
  std::vector<at::Tensor> images;
  auto run = [&](int size, int steps) -> absl::Status {
    const auto start = Clock::now();
    const double cpu_start = CpuSeconds();
    IMGINTERP_ASSIGN_OR_RETURN(GenerationResult result,
                               pipeline->Generate(MakeRequest(size, steps)));
    const std::string name =
        std::to_string(size) + "x" + std::to_string(size) + " " + std::to_string(steps) + " steps";
    RunRow row{name, size, steps, result.timings, Seconds(start)};
    const GenerationTimings& t = row.timings;
    row.per_eval = t.denoise_seconds / t.steps_run;
    row.full_seconds =
        steps == flags.full_steps
            ? row.total_seconds
            : t.text_encoder_seconds + full_evals * row.per_eval + t.vae_decode_seconds;
    row.cores_used = (CpuSeconds() - cpu_start) / row.total_seconds;
    row.peak_rss = PeakRssGiB();
    if (!torch::isfinite(result.images).all().item<bool>()) {
      return absl::InternalError(name + " produced non-finite pixels");
    }
    std::fprintf(stderr, "%s: %.1f s\n", name.c_str(), row.total_seconds);
    rows.push_back(row);
    images.push_back(result.images);
    return absl::OkStatus();
  };
  std::vector<int> sizes = {256};
  if (!flags.skip_512) sizes.push_back(512);
  std::vector<std::pair<int, double>> warmups;
  for (int size : sizes) {
    for (int i = 0; i < flags.warmup; ++i) {
      const auto start = Clock::now();
      IMGINTERP_RETURN_IF_ERROR(pipeline->Generate(MakeRequest(size, 1)).status());
      warmups.push_back({size, Seconds(start)});
      std::fprintf(stderr, "warm-up at %d: %.1f s\n", size, warmups.back().second);
    }
    IMGINTERP_RETURN_IF_ERROR(run(size, flags.steps));
    if (size == 256 && !flags.skip_real_run && flags.steps != flags.full_steps) {
      IMGINTERP_RETURN_IF_ERROR(run(size, flags.full_steps));
    }
  }
  IMGINTERP_ASSIGN_OR_RETURN(const ClipTiming clip, TimeClipRanking(flags, images));
  const double rank_seconds = clip.Total();

  // The report. The date keeps this report's format, "2026-11-26 01:29 UTC".
  const loadgen::MachineDescription machine = loadgen::DescribeMachine();
  const std::string date = machine.date.substr(0, 10) + " " + machine.date.substr(11, 5) + " UTC";
  const std::string load_at_end = LoadAverage();
  std::printf(
      "generation_bench %s: SD1.5 + pose ControlNet, full size, random N(0, 0.02) weights, "
      "fp32, CPU\n",
      date.c_str());
  std::printf("machine: %s, %d cores, %s; load average %s at start, %s at end\n",
              machine.cpu.c_str(), machine.cores, machine.kernel.c_str(), load_at_start.c_str(),
              load_at_end.c_str());
  std::printf(
      "threads: %d intra-op, OPENBLAS_NUM_THREADS=%s; guidance 7.5 (UNet batch 2), seed 42, "
      "1 image per run\n",
      torch::get_num_threads(), std::getenv("OPENBLAS_NUM_THREADS"));
  char folder_note[96] = "reused";
  if (write_seconds > 0) {
    std::snprintf(folder_note, sizeof(folder_note), "written in %.0f s, writer peak RSS %.2f GiB",
                  write_seconds, PeakRssGiB(RUSAGE_CHILDREN));
  }
  std::printf("folder: %s (%s); scheduler %s: %d steps = %d UNet evaluations\n", dir.c_str(),
              folder_note, pipeline->scheduler_class().c_str(), flags.full_steps, full_evals);
  std::printf("load: %.1f s, %.2f GiB of parameters, peak RSS %.2f GiB\n", load_seconds,
              pipeline->parameter_bytes() / double(1 << 30), load_rss);
  for (const auto& [size, seconds] : warmups) {
    std::printf("warm-up (1 step, not counted) at %dx%d: %.1f s\n", size, size, seconds);
  }
  const std::string full_header = std::to_string(flags.full_steps) + "-step s";
  std::printf("\n%-16s %5s %7s %8s %8s %7s %8s %10s %6s %8s\n", "run", "evals", "text s", "s/eval",
              "CN share", "VAE s", "total s", full_header.c_str(), "cores", "peakRSS");
  for (const RunRow& r : rows) {
    const GenerationTimings& t = r.timings;
    std::printf("%-16s %5d %7.2f %8.2f %7.0f%% %7.2f %8.1f %9.1f%s %6.2f %5.2fGiB\n",
                r.name.c_str(), t.steps_run, t.text_encoder_seconds, r.per_eval,
                100 * t.controlnet_seconds / t.denoise_seconds, t.vae_decode_seconds,
                r.total_seconds, r.full_seconds, r.steps == flags.full_steps ? "*" : " ",
                r.cores_used, r.peak_rss);
  }
  std::printf(
      "(s/eval: one guided UNet + ControlNet evaluation; %s = text + %d evals x s/eval "
      "+ VAE; * = measured; cores = CPU s / wall s)\n",
      full_header.c_str(), full_evals);
  std::printf(
      "\nCLIP ranking (%s, %lldx%lld, 4 images + 1 prompt): %.2f s (images %.2f, text %.2f, "
      "scores %.4f); peak RSS %.2f GiB\n",
      clip.name.c_str(), static_cast<long long>(clip.image_size),
      static_cast<long long>(clip.image_size), rank_seconds, clip.image_seconds, clip.text_seconds,
      clip.score_seconds, clip.peak_rss);
  std::printf("\nimages per hour per worker (%d steps, pose ControlNet, + 1/4 of a ranking):\n",
              flags.full_steps);
  json per_hour = json::object();
  for (const RunRow& r : rows) {
    const double rate = 3600.0 / (r.full_seconds + rank_seconds / 4);
    std::printf("  %-16s %6.1f  (%s)\n", r.name.c_str(), rate,
                r.steps == flags.full_steps ? "measured" : "extrapolated");
    per_hour[r.name] = rate;
  }
  if (flags.json_path.empty()) return absl::OkStatus();
  json out = {
      {"date", date},
      {"machine", {{"cpu", machine.cpu}, {"cores", machine.cores}, {"kernel", machine.kernel}}},
      {"load_average", {{"start", load_at_start}, {"end", load_at_end}}},
      {"threads", torch::get_num_threads()},
      {"scheduler", pipeline->scheduler_class()},
      {"full_steps", flags.full_steps},
      {"full_steps_unet_evaluations", full_evals},
      {"write_seconds", write_seconds},
      {"load_seconds", load_seconds},
      {"parameter_bytes", pipeline->parameter_bytes()},
      {"runs", json::array()},
      {"clip",
       {{"config", clip.name},
        {"rank_seconds", rank_seconds},
        {"image_seconds", clip.image_seconds},
        {"text_seconds", clip.text_seconds},
        {"score_seconds", clip.score_seconds}}},
      {"images_per_hour", per_hour},
      {"peak_rss_gib", PeakRssGiB()}};
  for (const RunRow& r : rows) out["runs"].push_back(r.ToJson());
  std::ofstream(flags.json_path) << out.dump(2) << "\n";
  std::printf("\nwrote %s\n", flags.json_path.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace imginterp::generation

int main(int argc, char** argv) {
  // OpenBLAS reads its thread count when the library loads, before main: set it and start again.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    std::fprintf(stderr, "could not re-execute with OPENBLAS_NUM_THREADS=1; continuing\n");
  }
  namespace bench = imginterp::bench;
  imginterp::generation::Flags flags;
  imginterp::common::FlagSet flag_set("generation_bench", imginterp::generation::kDescription);
  flag_set.Add("work_dir", &flags.work_dir,
               "The random-weight diffusers folder: written when its .complete marker is missing, "
               "reused otherwise");
  flag_set.Add("config_dir", &flags.config_dir, "Folder of the sd15 reference configs");
  flag_set.Add("tokenizer_dir", &flags.tokenizer_dir,
               "Tokenizer copied into the folder (vocab.json, merges.txt, tokenizer_config.json); "
               "the tiny one's ids are valid for the full-size text encoder");
  flag_set.Add("clip_config", &flags.clip_config,
               "CLIP config of the ranking (the clip service's default model)");
  flag_set.Add("threads", &flags.threads,
               "LibTorch intra-op threads (the sd15 catalogue entry's intra_op_threads)");
  flag_set.Add("steps", &flags.steps, "Steps measured per size, extrapolated to --full_steps");
  flag_set.Add("full_steps", &flags.full_steps,
               "Steps of a real generation: extrapolation target and length of the real run");
  flag_set.Add("warmup", &flags.warmup, "1-step generations per size before timing, not counted");
  flag_set.Add("clip_repeats", &flags.clip_repeats, "CLIP rankings averaged, after one warm-up");
  flag_set.Add("skip_512", &flags.skip_512, "Measure 256x256 only");
  flag_set.Add("skip_real_run", &flags.skip_real_run,
               "Skip the real --full_steps run at 256x256 that checks the extrapolation");
  flag_set.Add("json", &flags.json_path, "Also write the report as JSON here");
  flag_set.Add("write_only", &flags.write_only,
               "Internal: only write the folder (the child process the benchmark starts)");
  auto check = [&]() -> absl::Status {
    IMGINTERP_RETURN_IF_ERROR(bench::CheckAtLeast("threads", flags.threads, 1));
    IMGINTERP_RETURN_IF_ERROR(bench::CheckAtLeast("steps", flags.steps, 1));
    IMGINTERP_RETURN_IF_ERROR(bench::CheckAtLeast("full_steps", flags.full_steps, 1));
    IMGINTERP_RETURN_IF_ERROR(bench::CheckAtLeast("warmup", flags.warmup, 0));
    return bench::CheckAtLeast("clip_repeats", flags.clip_repeats, 1);
  };
  if (auto exit_code =
          bench::ParseFlagsOrExitCode(flag_set, "generation_bench", argc, argv, check)) {
    return *exit_code;
  }
  try {
    const absl::Status status =
        flags.write_only
            ? bench::WriteRandomSd15Folder({flags.work_dir, flags.config_dir, flags.tokenizer_dir})
            : imginterp::generation::Run(flags, argc, argv);
    if (!status.ok()) std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return status.ok() ? 0 : 1;
  } catch (const std::exception& e) {  // filesystem errors, c10::Error
    const std::string what = flags.write_only ? "writing " + flags.work_dir : "generation_bench";
    std::fprintf(stderr, "%s failed: %s\n", what.c_str(), e.what());
    return 1;
  }
}
