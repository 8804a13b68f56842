#include "services/clip/clip_instance.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "imginterp/v1/clip.pb.h"
#include "services/clip/clip_preprocessor.h"
#include "services/clip/lru_cache.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/models/clip/clip_loader.h"
#include "services/models/clip/clip_tokenizer.h"

namespace imginterp::clip_service {

// The embedding cache's key: two unrelated 64-bit hashes and the length, so a collision that
// would hand one image another's embedding needs both hashes to collide on inputs of equal size.
// Not in the anonymous namespace: ClipInstance::State holds a cache keyed by it.
struct ImageKey {
  uint64_t libstdcxx_hash = 0;
  uint64_t absl_hash = 0;
  uint64_t size = 0;
  bool operator==(const ImageKey& o) const {
    return libstdcxx_hash == o.libstdcxx_hash && absl_hash == o.absl_hash && size == o.size;
  }
};
struct ImageKeyHash {
  size_t operator()(const ImageKey& key) const { return key.absl_hash; }
};

namespace {

using Clock = std::chrono::steady_clock;

ImageKey KeyOf(std::string_view bytes) {
  return {std::hash<std::string_view>{}(bytes), absl::Hash<std::string_view>{}(bytes),
          bytes.size()};
}

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// An image of a request with the field path that names it in errors ("images[3]").
struct LabeledImage {
  const v1::Image* image;
  std::string label;
};

absl::StatusOr<int64_t> IntParameter(const v1::ModelConfig& config, const std::string& key,
                                     int64_t fallback, int64_t low, int64_t high) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < low || value > high) {
    return absl::InvalidArgumentError(absl::StrCat("config.pbtxt of '", config.name(),
                                                   "': parameter ", key, " must be an integer in ",
                                                   low, "..", high, "; got \"", it->second, "\""));
  }
  return value;
}

void FillEmbedding(const at::Tensor& row, v1::Embedding* out) {
  const at::Tensor values = row.to(torch::kFloat32).contiguous();
  const float* data = values.data_ptr<float>();
  out->mutable_values()->Assign(data, data + values.numel());
}

void AddFloats(const at::Tensor& t, google::protobuf::RepeatedField<float>* out) {
  const at::Tensor values = t.to(torch::kFloat32).contiguous();
  const float* data = values.data_ptr<float>();
  out->Add(data, data + values.numel());
}

}  // namespace

absl::StatusOr<ClipModelSettings> ParseClipModelSettings(const v1::ModelConfig& config) {
  ClipModelSettings s;
  IMGINTERP_ASSIGN_OR_RETURN(
      s.embedding_cache_size,
      IntParameter(config, "embedding_cache_size", s.embedding_cache_size, 0, 1'000'000));
  IMGINTERP_ASSIGN_OR_RETURN(
      s.text_cache_size, IntParameter(config, "text_cache_size", s.text_cache_size, 0, 1'000'000));
  IMGINTERP_ASSIGN_OR_RETURN(int64_t max_images,
                             IntParameter(config, "max_images", s.max_images, 1, 4096));
  IMGINTERP_ASSIGN_OR_RETURN(int64_t max_texts,
                             IntParameter(config, "max_texts", s.max_texts, 1, 4096));
  s.max_images = static_cast<int>(max_images);
  s.max_texts = static_cast<int>(max_texts);
  s.intra_op_threads = std::max(1, config.intra_op_threads());
  return s;
}

struct ClipInstance::State {
  State(std::string model_name, const ClipModelSettings& s, const codec::ImageLimits& l,
        clip::ClipModel m, std::unique_ptr<clip::ClipTokenizer> t, ClipPreprocessorConfig p)
      : name(std::move(model_name)),
        settings(s),
        limits(l),
        model(std::move(m)),
        tokenizer(std::move(t)),
        preprocessor(p),
        image_cache(static_cast<size_t>(s.embedding_cache_size)),
        text_cache(static_cast<size_t>(s.text_cache_size)) {}

  const std::string name;
  const ClipModelSettings settings;
  const codec::ImageLimits limits;
  clip::ClipModel model;
  const std::unique_ptr<clip::ClipTokenizer> tokenizer;
  const ClipPreprocessor preprocessor;
  float logit_scale_exp = 1;
  int dimension = 0;
  int image_size = 0;
  // Unit-norm embeddings [dimension], float32 on CPU.
  LruCache<ImageKey, at::Tensor, ImageKeyHash> image_cache;
  LruCache<std::string, at::Tensor> text_cache;
  std::atomic<int64_t> image_hits{0};
  std::atomic<int64_t> image_misses{0};
  std::atomic<int64_t> text_hits{0};
  std::atomic<int64_t> text_misses{0};

  absl::Status TooMany(const std::string& what, size_t count, int limit,
                       const std::string& parameter) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request has ", count, " ", what, "; model '", name, "' accepts at most ", limit,
        " per request (config parameter ", parameter, "): split them over several requests"));
  }

  // Unit-norm embeddings [n, dimension] of `images`; those not in the cache are decoded and
  // encoded in one forward pass. Decoding errors keep their code and name the image.
  absl::StatusOr<at::Tensor> EmbedImages(const std::vector<LabeledImage>& images,
                                         service::WorkItem& item, int* cache_hits) {
    auto start = Clock::now();
    std::vector<at::Tensor> rows(images.size());
    std::vector<at::Tensor> pixels;
    std::vector<ImageKey> pending_keys;
    std::vector<std::vector<size_t>> pending_rows;  // rows each pending image fills
    std::unordered_map<ImageKey, size_t, ImageKeyHash> pending_index;
    int hits = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string& bytes = images[i].image->data();
      const ImageKey key = KeyOf(bytes);
      if (const at::Tensor* cached = image_cache.Find(key)) {
        rows[i] = *cached;
        ++hits;
        continue;
      }
      if (auto it = pending_index.find(key); it != pending_index.end()) {
        pending_rows[it->second].push_back(i);  // the same bytes twice: encode once
        continue;
      }
      auto decoded = codec::Decode(bytes, limits);
      if (!decoded.ok()) {
        return absl::Status(decoded.status().code(),
                            absl::StrCat(images[i].label, ": ", decoded.status().message()));
      }
      auto tensor = preprocessor.Preprocess(decoded->rgb);
      if (!tensor.ok()) {
        return absl::Status(tensor.status().code(),
                            absl::StrCat(images[i].label, ": ", tensor.status().message()));
      }
      pending_index.emplace(key, pixels.size());
      pending_keys.push_back(key);
      pending_rows.push_back({i});
      pixels.push_back(*std::move(tensor));
    }
    image_hits += hits;
    image_misses += static_cast<int64_t>(pixels.size());
    if (cache_hits != nullptr) *cache_hits = hits;
    item.preprocess_seconds += Since(start);
    if (!pixels.empty()) {
      start = Clock::now();
      const at::Tensor embeds =
          clip::L2Normalize(model->GetImageFeatures(torch::stack(pixels))).to(torch::kFloat32);
      item.inference_seconds += Since(start);
      for (size_t j = 0; j < pixels.size(); ++j) {
        at::Tensor row = embeds[static_cast<int64_t>(j)].clone();
        for (size_t i : pending_rows[j]) rows[i] = row;
        image_cache.Insert(pending_keys[j], row);
      }
    }
    return torch::stack(rows);
  }

  // Unit-norm embeddings [n, dimension] of `texts`, misses in one forward pass.
  at::Tensor EmbedTexts(const std::vector<std::string>& texts, service::WorkItem& item) {
    auto start = Clock::now();
    std::vector<at::Tensor> rows(texts.size());
    std::vector<std::string> pending;
    std::vector<std::vector<size_t>> pending_rows;
    std::unordered_map<std::string, size_t> pending_index;
    for (size_t i = 0; i < texts.size(); ++i) {
      if (const at::Tensor* cached = text_cache.Find(texts[i])) {
        rows[i] = *cached;
        ++text_hits;
        continue;
      }
      if (auto it = pending_index.find(texts[i]); it != pending_index.end()) {
        pending_rows[it->second].push_back(i);
        continue;
      }
      pending_index.emplace(texts[i], pending.size());
      pending.push_back(texts[i]);
      pending_rows.push_back({i});
    }
    text_misses += static_cast<int64_t>(pending.size());
    if (!pending.empty()) {
      const int64_t length = tokenizer->max_length();
      std::vector<int64_t> ids;
      std::vector<int64_t> mask;
      for (const clip::ClipTokens& tokens : tokenizer->EncodeBatch(pending)) {
        ids.insert(ids.end(), tokens.input_ids.begin(), tokens.input_ids.end());
        mask.insert(mask.end(), tokens.attention_mask.begin(), tokens.attention_mask.end());
      }
      const std::vector<int64_t> shape = {static_cast<int64_t>(pending.size()), length};
      item.preprocess_seconds += Since(start);
      start = Clock::now();
      const at::Tensor embeds =
          clip::L2Normalize(model->GetTextFeatures(torch::tensor(ids).view(shape),
                                                   torch::tensor(mask).view(shape)))
              .to(torch::kFloat32);
      item.inference_seconds += Since(start);
      for (size_t j = 0; j < pending.size(); ++j) {
        at::Tensor row = embeds[static_cast<int64_t>(j)].clone();
        for (size_t i : pending_rows[j]) rows[i] = row;
        text_cache.Insert(pending[j], row);
      }
    }
    return torch::stack(rows);
  }

  absl::Status Score(const v1::ScoreRequest& request, v1::ScoreResponse* response,
                     service::WorkItem& item) {
    std::vector<LabeledImage> images;
    for (int i = 0; i < request.images_size(); ++i) {
      images.push_back({&request.images(i), absl::StrCat("images[", i, "]")});
    }
    if (!request.image().data().empty()) images.push_back({&request.image(), "image"});
    std::vector<std::string> texts(request.texts().begin(), request.texts().end());
    if (!request.text().empty()) texts.push_back(request.text());
    if (images.empty()) {
      return absl::InvalidArgumentError(
          "ScoreRequest has no images: set `images` (or `image`) to at least one encoded image");
    }
    if (texts.empty()) {
      return absl::InvalidArgumentError(
          "ScoreRequest has no texts: set `texts` (or `text`) to at least one text to score the "
          "images against");
    }
    if (static_cast<int>(images.size()) > settings.max_images) {
      return TooMany("images", images.size(), settings.max_images, "max_images");
    }
    if (static_cast<int>(texts.size()) > settings.max_texts) {
      return TooMany("texts", texts.size(), settings.max_texts, "max_texts");
    }
    int hits = 0;
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor image_embeds, EmbedImages(images, item, &hits));
    if (item.cancelled && item.cancelled()) return absl::CancelledError("the caller cancelled");
    const at::Tensor text_embeds = EmbedTexts(texts, item);
    const auto start = Clock::now();
    const at::Tensor cosines = image_embeds.matmul(text_embeds.t());
    response->set_num_images(static_cast<int>(images.size()));
    response->set_num_texts(static_cast<int>(texts.size()));
    AddFloats(cosines * logit_scale_exp, response->mutable_scores());
    AddFloats(cosines, response->mutable_cosines());
    response->set_logit_scale_exp(logit_scale_exp);
    response->set_image_cache_hits(hits);
    if (request.return_embeddings()) {
      for (int64_t i = 0; i < image_embeds.size(0); ++i) {
        FillEmbedding(image_embeds[i], response->add_image_embeddings());
      }
      for (int64_t t = 0; t < text_embeds.size(0); ++t) {
        FillEmbedding(text_embeds[t], response->add_text_embeddings());
      }
    }
    item.postprocess_seconds += Since(start);
    return absl::OkStatus();
  }

  absl::Status Rank(const v1::RankRequest& request, v1::RankResponse* response,
                    service::WorkItem& item) {
    const int n = request.candidates_size();
    if (n == 0) {
      return absl::InvalidArgumentError(
          "RankRequest has no candidates: set `candidates` to the images to rank");
    }
    if (n > settings.max_images) {
      return TooMany("candidates", n, settings.max_images, "max_images");
    }
    const bool has_text = !request.text().empty();
    const bool has_source = !request.source_image().data().empty();
    if (!has_text && !has_source) {
      return absl::InvalidArgumentError(
          "RankRequest needs something to rank against: set `text`, `source_image` or both");
    }
    if (!(request.text_weight() >= 0) || !(request.image_weight() >= 0) ||
        std::isinf(request.text_weight()) || std::isinf(request.image_weight())) {
      return absl::InvalidArgumentError(
          absl::StrCat("text_weight and image_weight must be finite and >= 0; got ",
                       request.text_weight(), " and ", request.image_weight()));
    }
    if (request.top_k() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k must be >= 0 (0 returns every candidate); got ", request.top_k()));
    }
    std::vector<LabeledImage> images;
    for (int i = 0; i < n; ++i) {
      images.push_back({&request.candidates(i), absl::StrCat("candidates[", i, "]")});
    }
    if (has_source) images.push_back({&request.source_image(), "source_image"});
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor embeds, EmbedImages(images, item, nullptr));
    if (item.cancelled && item.cancelled()) return absl::CancelledError("the caller cancelled");
    const at::Tensor candidates = embeds.narrow(0, 0, n);
    at::Tensor text_cosines = torch::zeros({n});
    at::Tensor image_similarity = torch::zeros({n});
    if (has_text) {
      text_cosines = candidates.matmul(EmbedTexts({request.text()}, item)[0]);
    }
    const auto start = Clock::now();
    if (has_source) image_similarity = candidates.matmul(embeds[n]);
    double text_weight = has_text ? request.text_weight() : 0;
    double image_weight = has_source ? request.image_weight() : 0;
    if (text_weight + image_weight == 0) {
      text_weight = has_text ? 1 : 0;
      image_weight = has_source ? 1 : 0;
    }
    const at::Tensor combined = (text_cosines * text_weight + image_similarity * image_weight) /
                                (text_weight + image_weight);
    const auto text_a = text_cosines.contiguous();
    const auto image_a = image_similarity.contiguous();
    const auto combined_a = combined.contiguous();
    const float* tc = text_a.data_ptr<float>();
    const float* is = image_a.data_ptr<float>();
    const float* cs = combined_a.data_ptr<float>();
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [cs](int a, int b) { return cs[a] > cs[b]; });
    const int keep = request.top_k() > 0 ? std::min(n, request.top_k()) : n;
    for (int r = 0; r < keep; ++r) {
      const int i = order[r];
      v1::RankedCandidate* out = response->add_ranked();
      out->set_index(i);
      out->set_text_cosine(tc[i]);
      out->set_text_score(tc[i] * logit_scale_exp);
      out->set_image_similarity(is[i]);
      out->set_combined_score(cs[i]);
      if (request.return_images()) *out->mutable_image() = request.candidates(i);
    }
    response->set_logit_scale_exp(logit_scale_exp);
    item.postprocess_seconds += Since(start);
    return absl::OkStatus();
  }

  absl::Status Embed(const v1::EmbedRequest& request, v1::EmbedResponse* response,
                     service::WorkItem& item) {
    if (request.images_size() == 0 && request.texts_size() == 0) {
      return absl::InvalidArgumentError(
          "EmbedRequest is empty: set `images`, `texts` or both to what should be embedded");
    }
    if (request.images_size() > settings.max_images) {
      return TooMany("images", request.images_size(), settings.max_images, "max_images");
    }
    if (request.texts_size() > settings.max_texts) {
      return TooMany("texts", request.texts_size(), settings.max_texts, "max_texts");
    }
    if (request.images_size() > 0) {
      std::vector<LabeledImage> images;
      for (int i = 0; i < request.images_size(); ++i) {
        images.push_back({&request.images(i), absl::StrCat("images[", i, "]")});
      }
      IMGINTERP_ASSIGN_OR_RETURN(at::Tensor embeds, EmbedImages(images, item, nullptr));
      for (int64_t i = 0; i < embeds.size(0); ++i) {
        FillEmbedding(embeds[i], response->add_image_embeddings());
      }
    }
    if (request.texts_size() > 0) {
      if (item.cancelled && item.cancelled()) return absl::CancelledError("the caller cancelled");
      const at::Tensor embeds = EmbedTexts({request.texts().begin(), request.texts().end()}, item);
      for (int64_t t = 0; t < embeds.size(0); ++t) {
        FillEmbedding(embeds[t], response->add_text_embeddings());
      }
    }
    response->set_dimension(dimension);
    response->set_logit_scale_exp(logit_scale_exp);
    return absl::OkStatus();
  }
};

ClipInstance::ClipInstance(std::unique_ptr<State> state) : state_(std::move(state)) {}
ClipInstance::~ClipInstance() = default;

absl::StatusOr<std::unique_ptr<ClipInstance>> ClipInstance::Load(const std::string& name,
                                                                 const std::string& version_dir,
                                                                 const ClipModelSettings& settings,
                                                                 const codec::ImageLimits& limits) {
  auto in_folder = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat("clip model '", name, "' (", version_dir,
                                                    "): ", status.message()));
  };
  auto model = clip::LoadClipModelFromFolder(version_dir);
  if (!model.ok()) return in_folder(model.status());
  (*model)->eval();
  const clip::ClipConfig& config = (*model)->config();
  clip::ClipTokenizerOptions tokenizer_options;
  tokenizer_options.max_length = config.text.max_position_embeddings;
  auto tokenizer = clip::ClipTokenizer::FromFolder(version_dir, tokenizer_options);
  if (!tokenizer.ok()) return in_folder(tokenizer.status());

  const int image_size = static_cast<int>(config.vision.image_size);
  auto preprocessing = ClipPreprocessorConfig::FromFile(version_dir + "/preprocessor_config.json");
  if (absl::IsNotFound(preprocessing.status())) {
    // transformers' defaults, sized to the vision tower.
    ClipPreprocessorConfig defaults;
    defaults.shortest_edge = defaults.crop_height = defaults.crop_width = image_size;
    IMGINTERP_LOG(Warning) << "clip model '" << name
                           << "': no preprocessor_config.json; using CLIP's defaults at "
                           << image_size << "x" << image_size;
    preprocessing = defaults;
  }
  if (!preprocessing.ok()) return in_folder(preprocessing.status());
  const cv::Size output = ClipPreprocessor(*preprocessing).OutputSize(image_size, image_size + 1);
  if (output != cv::Size(image_size, image_size)) {
    return in_folder(absl::InvalidArgumentError(
        absl::StrCat("preprocessor_config.json makes ", output.width, "x", output.height,
                     " inputs but the vision model takes ", image_size, "x", image_size,
                     ": set do_center_crop with crop_size ", image_size)));
  }
  auto state = std::make_unique<State>(name, settings, limits, *std::move(model),
                                       *std::move(tokenizer), *preprocessing);
  state->image_size = image_size;
  state->dimension = static_cast<int>(config.projection_dim);
  {
    c10::InferenceMode inference_mode;
    state->logit_scale_exp = state->model->logit_scale.exp().item<float>();
  }
  return std::unique_ptr<ClipInstance>(new ClipInstance(std::move(state)));
}

absl::Status ClipInstance::Warmup() {
  try {
    c10::InferenceMode inference_mode;
    at::set_num_threads(state_->settings.intra_op_threads);
    const int s = state_->image_size;
    state_->model->GetImageFeatures(torch::zeros({1, 3, s, s}));
    const clip::ClipTokens tokens = state_->tokenizer->Encode("");
    state_->model->GetTextFeatures(torch::tensor(tokens.input_ids).unsqueeze(0),
                                   torch::tensor(tokens.attention_mask).unsqueeze(0));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "clip model '", state_->name, "' failed its warm-up pass: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

ClipCacheStats ClipInstance::cache_stats() const {
  return {state_->image_hits.load(), state_->image_misses.load(), state_->text_hits.load(),
          state_->text_misses.load()};
}

int ClipInstance::dimension() const { return state_->dimension; }
float ClipInstance::logit_scale_exp() const { return state_->logit_scale_exp; }

absl::Status ClipInstance::Execute(service::WorkItem& item) {
  const int threads = state_->settings.intra_op_threads;
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
  try {
    c10::InferenceMode inference_mode;
    if (const auto* score = dynamic_cast<const v1::ScoreRequest*>(item.request)) {
      return state_->Score(*score, static_cast<v1::ScoreResponse*>(item.response), item);
    }
    if (const auto* rank = dynamic_cast<const v1::RankRequest*>(item.request)) {
      return state_->Rank(*rank, static_cast<v1::RankResponse*>(item.response), item);
    }
    if (const auto* embed = dynamic_cast<const v1::EmbedRequest*>(item.request)) {
      return state_->Embed(*embed, static_cast<v1::EmbedResponse*>(item.response), item);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("clip model '", state_->name, "' failed: ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory running clip model '", state_->name, "': send fewer images per request"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the clip service does not run ", item.request->GetTypeName(),
                   " (use ScoreRequest, RankRequest or EmbedRequest)"));
}

}  // namespace imginterp::clip_service
