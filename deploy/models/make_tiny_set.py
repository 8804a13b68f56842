#!/usr/bin/env python3
"""Arranges the tiny test models into the model store, in the published folder layouts.

Real Stable Diffusion, ControlNet and CLIP weights cannot be fetched on a machine without access
to Hugging Face, so the `generate` and `clip` services would have nothing to serve. The reference
implementations' tiny random-weight models (tests/data/reference/) have the exact published key
layouts, so this script lays them out as a diffusers pipeline folder and a transformers CLIP
folder, with a tiny CLIP BPE vocabulary, and every pipeline can run end to end here and in CI.
The images they make are noise; the code paths are the real ones.

Store layout written (idempotent; files are replaced only when their content changed):
  <store>/generate/tiny-sd15/config.pbtxt
  <store>/generate/tiny-sd15/1/model_index.json, unet/, vae/, text_encoder/, tokenizer/,
                                scheduler/, controlnet/tiny/
  <store>/clip/tiny-clip/config.pbtxt
  <store>/clip/tiny-clip/1/config.json, model.safetensors, vocab.json, merges.txt,
                           preprocessor_config.json

Standard library only (runs before any Python package is installed).
"""

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO / "tests" / "data" / "reference"

# The vocabulary size of the tiny text encoder and tiny CLIP model: 256 byte tokens, the same 256
# with "</w>", the learned merges, then <|startoftext|> (998) and <|endoftext|> (999). The end
# token must be the highest id: CLIP reads the pooled output at the argmax of the ids.
VOCAB_SIZE = 1000
NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2

# Words the merges are learned from: prompt vocabulary, so tiny prompts tokenise into a few
# multi-letter pieces as real ones do.
CORPUS = """
a photo of a person standing in a field at sunset with mountains in the background
portrait of a woman with long hair smiling close up studio lighting high quality
a man riding a bicycle on a city street at night neon lights rain reflections
an astronaut floating in space above the earth detailed digital painting
a cat sitting on a wooden table next to a window morning light soft shadows
a dog running on the beach waves ocean blue sky clouds summer afternoon
oil painting of a forest river with trees and rocks autumn colours golden hour
two people dancing in a ballroom elegant dress suit black and white photograph
a child playing football in the park green grass trees bright sunny day
watercolor illustration of a small house in the countryside flowers garden path
cinematic shot of a knight in armour holding a sword castle dramatic lighting
a robot walking through a futuristic city tall buildings flying cars highly detailed
a bowl of fruit apples oranges bananas still life painting warm tones
low quality blurry distorted deformed ugly bad anatomy extra limbs watermark text
best quality masterpiece sharp focus realistic photorealistic eight k resolution
a skier jumping over snow covered hills winter sport action camera wide angle
an old man reading a book by the fireplace cozy room evening candles
a group of friends sitting around a campfire under the stars in the mountains
a surfer riding a large wave at dawn spray motion blur telephoto lens
a ballerina in a white dress performing on stage spotlight theatre audience
"""


def bytes_to_unicode():
    """CLIP's reversible map from bytes to printable characters (the GPT-2 scheme)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def learn_vocabulary():
    """Returns (vocab, merges): a byte-level BPE learned greedily from CORPUS.

    Deterministic: the most frequent pair wins, ties broken by the pair's text."""
    byte_chars = bytes_to_unicode()
    words = collections.Counter(CORPUS.split())
    # Each word as its byte symbols, the last one marked as the end of the word.
    split = {}
    for word in words:
        symbols = [byte_chars[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        split[word] = symbols
    merges = []
    while len(merges) < NUM_MERGES:
        pairs = collections.Counter()
        for word, symbols in split.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, symbols in split.items():
            merged = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            split[word] = merged
    if len(merges) != NUM_MERGES:
        sys.exit(f"make_tiny_set: the corpus gives {len(merges)} merges, {NUM_MERGES} are needed")
    tokens = [byte_chars[b] for b in range(256)]
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for token in tokens:
        if token in vocab:
            sys.exit(f"make_tiny_set: duplicate token {token!r}")
        vocab[token] = len(vocab)
    return vocab, merges


def write_if_changed(path, data):
    """Writes bytes or text to `path` unless it already holds exactly that."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def copy_if_changed(source, path):
    if not source.exists():
        sys.exit(f"make_tiny_set: {source} is missing (is the repository complete?)")
    return write_if_changed(path, source.read_bytes())


def json_text(value):
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def pbtxt_parameters(parameters):
    lines = []
    for key in sorted(parameters):
        lines.append(f'parameters {{ key: "{key}" value: "{parameters[key]}" }}')
    return "\n".join(lines) + "\n"


SD_PIPELINE_CONFIG = """name: "tiny-sd15"
backend: "native"
description: "Tiny random-weight Stable Diffusion 1.5 layout (diffusers folder) with one tiny ControlNet for every prior kind: exercises every generation path; its images are noise."
source: "tests/data/reference/diffusion/tiny (diffusers 0.27.2, random weights)"
licence: "Apache-2.0 (test data)"
max_batch_size: 1
max_queue_size: 16
intra_op_threads: 2
"""

CLIP_CONFIG = """name: "tiny-clip"
backend: "native"
description: "Tiny random-weight CLIPModel (transformers folder, 30x30 images): exercises scoring and ranking; its scores carry no meaning."
source: "tests/data/reference/clip (transformers 4.38.2, random weights)"
licence: "Apache-2.0 (test data)"
max_batch_size: 8
max_queue_delay_us: 2000
intra_op_threads: 1
"""

# Every prior kind the gateway can hand to a ControlNet; the tiny set serves all of them with its
# one tiny ControlNet (the real catalogue maps each to its own lllyasviel v1.1 model).
PRIOR_KINDS = ["canny", "depth", "pose", "segmentation", "lineart", "scribble"]


def make_generate(reference, store):
    tiny = reference / "diffusion" / "tiny"
    root = store / "generate" / "tiny-sd15"
    version = root / "1"
    changed = False
    parameters = {f"controlnet.{kind}": "controlnet/tiny" for kind in PRIOR_KINDS}
    changed |= write_if_changed(root / "config.pbtxt",
                                SD_PIPELINE_CONFIG + pbtxt_parameters(parameters))
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.27.2",
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    changed |= write_if_changed(version / "model_index.json", json_text(model_index))
    for component, stem, weights_name in [
        ("unet", "tiny_unet", "diffusion_pytorch_model.safetensors"),
        ("vae", "tiny_vae", "diffusion_pytorch_model.safetensors"),
        ("text_encoder", "tiny_text_encoder", "model.safetensors"),
        ("controlnet/tiny", "tiny_controlnet", "diffusion_pytorch_model.safetensors"),
    ]:
        changed |= copy_if_changed(tiny / f"{stem}.config.json", version / component / "config.json")
        changed |= copy_if_changed(tiny / f"{stem}.weights.safetensors",
                                   version / component / weights_name)
    # The scheduler of the reference pipeline run (tiny_pipeline_controlnet.io.safetensors).
    scheduler = {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": "0.27.2",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }
    changed |= write_if_changed(version / "scheduler" / "scheduler_config.json", json_text(scheduler))
    changed |= write_tokenizer(version / "tokenizer")
    return root, changed


def write_tokenizer(folder):
    vocab, merges = learn_vocabulary()
    changed = write_if_changed(folder / "vocab.json", json_text(vocab))
    merges_text = "#version: 0.2 (tiny vocabulary made by deploy/models/make_tiny_set.py)\n"
    merges_text += "".join(f"{a} {b}\n" for a, b in merges)
    changed |= write_if_changed(folder / "merges.txt", merges_text)
    tokenizer_config = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "model_max_length": 77,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    }
    changed |= write_if_changed(folder / "tokenizer_config.json", json_text(tokenizer_config))
    return changed


def make_clip(reference, store):
    clip = reference / "clip"
    root = store / "clip" / "tiny-clip"
    version = root / "1"
    changed = write_if_changed(root / "config.pbtxt", CLIP_CONFIG)
    changed |= copy_if_changed(clip / "tiny_clip.config.json", version / "config.json")
    changed |= copy_if_changed(clip / "tiny_clip.weights.safetensors", version / "model.safetensors")
    changed |= write_tokenizer(version)
    size = json.loads((clip / "tiny_clip.config.json").read_text())["vision_config"]["image_size"]
    preprocessor = {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }
    changed |= write_if_changed(version / "preprocessor_config.json", json_text(preprocessor))
    return root, changed


def default_store():
    env = os.environ.get("IMGINTERP_MODEL_STORE")
    if env:
        return pathlib.Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "image-interpreter" / "models"


def main():
    parser = argparse.ArgumentParser(
        description="Lay out the tiny random-weight Stable Diffusion 1.5 + ControlNet pipeline "
        "(generate/tiny-sd15) and tiny CLIP model (clip/tiny-clip) in the model store, so the "
        "generate and clip services run without the real weights. Safe to re-run.")
    parser.add_argument("--store", type=pathlib.Path, default=None,
                        help="model store (default: $IMGINTERP_MODEL_STORE or "
                        "~/.cache/image-interpreter/models)")
    parser.add_argument("--reference", type=pathlib.Path, default=DEFAULT_REFERENCE,
                        help="reference data folder (default: tests/data/reference)")
    args = parser.parse_args()
    store = args.store or default_store()
    for make in (make_generate, make_clip):
        root, changed = make(args.reference, store)
        print(f"{'wrote' if changed else 'up to date'}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
