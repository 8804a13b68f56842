// A diffusers Stable Diffusion 1.5 folder with full-size random weights, for benchmarks that need
// the real model sizes and file layout but no downloaded weights. Built from the sd15 reference
// configs (tests/data/reference/diffusion/configs/sd15): every parameter drawn from N(0, 0.02)
// (never uninitialised memory: NaNs and denormals distort timing) and saved under the published
// key names, the published SD1.5 PNDM scheduler config, the tiny tokenizer of the model store (its
// ids are valid for the full vocabulary) and the full-size OpenPose ControlNet. 5.4 GB on disk; the
// writer holds one module (at most the UNet, ~3.4 GiB) in memory at a time.
//
// Stateless functions; not safe to run twice at once on the same folder.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace imginterp::bench {

// The OpenPose ControlNet's folder, relative to the pipeline folder.
inline constexpr char kRandomSd15ControlNetFolder[] = "controlnet/control_v11p_sd15_openpose";

struct RandomSd15FolderOptions {
  std::string dir;            // the folder to write (created; existing files are overwritten)
  std::string config_dir;     // the reference configs: text_encoder, vae, unet, controlnet_openpose
  std::string tokenizer_dir;  // vocab.json, merges.txt and tokenizer_config.json to copy
};

// True when `dir` holds a folder whose writing finished (its marker file exists).
bool RandomSd15FolderIsComplete(const std::string& dir);

// Writes the folder, with the completion marker last. FAILED_PRECONDITION without a tokenizer;
// the errors of reading configs and writing safetensors otherwise. Filesystem errors and
// c10::Error are thrown.
absl::Status WriteRandomSd15Folder(const RandomSd15FolderOptions& options);

}  // namespace imginterp::bench
