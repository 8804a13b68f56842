#include "services/core/jobbus/artifact_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/key_value.h"

namespace imginterp::jobbus {
namespace {

// Used when the caller passes no chunk size: half of nats-server's default max_payload (1 MB).
constexpr int64_t kDefaultChunkBytes = 512 * 1024;

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

absl::Status ValidateToken(const std::string& value, const char* what) {
  if (value.empty() || !std::all_of(value.begin(), value.end(), IsTokenChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", value, "' is invalid: use only [A-Za-z0-9_-], at least one"));
  }
  return absl::OkStatus();
}

// Job ids become the first token of chunk keys, so they may not contain '.'.
absl::Status ValidateJobId(const std::string& job_id) {
  bool valid = !job_id.empty() && std::all_of(job_id.begin(), job_id.end(), [](char c) {
    return IsTokenChar(c) || c == '=' || c == '/';
  });
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job id '", job_id, "' cannot key artifacts: use only [-/_=a-zA-Z0-9], at least one"));
  }
  return absl::OkStatus();
}

std::string ChunkKey(const std::string& job_id, const std::string& name, int64_t index) {
  return absl::StrCat(job_id, ".", name, ".", index);
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return std::string();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

ArtifactStore::ArtifactStore(KeyValue& kv, int64_t inline_limit_bytes, int64_t chunk_bytes)
    : kv_(kv),
      inline_limit_bytes_(std::max<int64_t>(inline_limit_bytes, 0)),
      chunk_bytes_(chunk_bytes > 0 ? chunk_bytes : kDefaultChunkBytes) {}

absl::StatusOr<v1::ArtifactRef> ArtifactStore::Put(const std::string& job_id,
                                                   const std::string& name,
                                                   const std::string& content_type,
                                                   const std::string& data) {
  IMGINTERP_RETURN_IF_ERROR(ValidateJobId(job_id));
  IMGINTERP_RETURN_IF_ERROR(ValidateToken(name, "artifact name"));
  v1::ArtifactRef ref;
  ref.set_name(name);
  ref.set_content_type(content_type);
  ref.set_size(static_cast<int64_t>(data.size()));
  ref.set_sha256(Sha256Hex(data));
  const int64_t size = static_cast<int64_t>(data.size());
  if (size <= inline_limit_bytes_) {
    ref.set_inline_data(data);
    return ref;
  }
  const int64_t chunks = (size + chunk_bytes_ - 1) / chunk_bytes_;
  if (chunks > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact '", name, "' of ", size, " bytes needs ", chunks, " chunks of ",
                     chunk_bytes_, " bytes; the limit is ", INT32_MAX));
  }
  for (int64_t i = 0; i < chunks; ++i) {
    IMGINTERP_RETURN_IF_ERROR(
        kv_.Put(ChunkKey(job_id, name, i), data.substr(i * chunk_bytes_, chunk_bytes_)).status());
  }
  ref.set_chunks(static_cast<int32_t>(chunks));
  return ref;
}

absl::StatusOr<std::string> ArtifactStore::Get(const std::string& job_id,
                                               const v1::ArtifactRef& ref) {
  std::string data;
  switch (ref.location_case()) {
    case v1::ArtifactRef::kInlineData:
      data = ref.inline_data();
      break;
    case v1::ArtifactRef::kChunks: {
      IMGINTERP_RETURN_IF_ERROR(ValidateJobId(job_id));
      IMGINTERP_RETURN_IF_ERROR(ValidateToken(ref.name(), "artifact name"));
      data.reserve(static_cast<size_t>(std::max<int64_t>(ref.size(), 0)));
      for (int32_t i = 0; i < ref.chunks(); ++i) {
        absl::StatusOr<KvEntry> chunk = kv_.Get(ChunkKey(job_id, ref.name(), i));
        if (absl::IsNotFound(chunk.status())) {
          // No first chunk: the artifact expired or its job was deleted. A later one missing
          // means the stored artifact is damaged.
          if (i == 0) {
            return absl::NotFoundError(absl::StrCat("artifact '", ref.name(), "' of job '", job_id,
                                                    "' is gone (expired or deleted)"));
          }
          return absl::DataLossError(absl::StrCat("chunk ", i, " of ", ref.chunks(),
                                                  " of artifact '", ref.name(), "' of job '",
                                                  job_id, "' is missing"));
        }
        if (!chunk.ok()) return chunk.status();
        data += chunk->value;
      }
      break;
    }
    case v1::ArtifactRef::LOCATION_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat("artifact reference '", ref.name(), "' has neither inline data nor chunks"));
  }
  if (static_cast<int64_t>(data.size()) != ref.size()) {
    return absl::DataLossError(absl::StrCat("artifact '", ref.name(), "' of job '", job_id,
                                            "' has ", data.size(), " bytes; its reference says ",
                                            ref.size()));
  }
  // A reference without a digest (made by hand, not by Put) is taken as it is.
  if (!ref.sha256().empty() && Sha256Hex(data) != ref.sha256()) {
    return absl::DataLossError(absl::StrCat("artifact '", ref.name(), "' of job '", job_id,
                                            "' does not match its sha256 ", ref.sha256()));
  }
  return data;
}

absl::Status ArtifactStore::DeleteJob(const std::string& job_id) {
  IMGINTERP_RETURN_IF_ERROR(ValidateJobId(job_id));
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<std::string> keys, kv_.Keys());
  const std::string prefix = job_id + ".";
  for (const std::string& key : keys) {
    if (!absl::StartsWith(key, prefix)) continue;
    absl::Status purged = kv_.Purge(key);
    if (!purged.ok() && !absl::IsNotFound(purged)) return purged;
  }
  return absl::OkStatus();
}

}  // namespace imginterp::jobbus
