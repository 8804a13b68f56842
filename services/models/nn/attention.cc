#include "services/models/nn/attention.h"

#include <torch/torch.h>

#include <cmath>

#include "services/models/nn/clip_encoder_layer.h"

namespace imginterp::nn {

AttentionImpl::AttentionImpl(const AttentionOptions& attention, const c10::TensorOptions& options)
    : attention_(attention) {
  TORCH_CHECK(attention.query_dim > 0 && attention.heads > 0 && attention.dim_head > 0,
              "Attention: query_dim, heads and dim_head must be positive");
  const int64_t inner = attention.heads * attention.dim_head;
  const int64_t kv_dim =
      attention.cross_attention_dim > 0 ? attention.cross_attention_dim : attention.query_dim;
  if (attention.norm_num_groups > 0) {
    group_norm =
        register_module("group_norm", GroupNorm(attention.norm_num_groups, attention.query_dim,
                                                attention.eps, /*affine=*/true, options));
  }
  to_q = register_module("to_q", Linear(attention.query_dim, inner, attention.bias, options));
  to_k = register_module("to_k", Linear(kv_dim, inner, attention.bias, options));
  to_v = register_module("to_v", Linear(kv_dim, inner, attention.bias, options));
  to_out_proj = Linear(inner, attention.query_dim, attention.out_bias, options);
  to_out = register_module("to_out", torch::nn::ModuleList(to_out_proj, Placeholder()));
  core_.scale = 1.0 / std::sqrt(static_cast<double>(attention.dim_head));
}

at::Tensor AttentionImpl::forward(const at::Tensor& hidden_states,
                                  const at::Tensor& encoder_hidden_states,
                                  const std::optional<at::Tensor>& attention_mask) {
  const at::Tensor residual = hidden_states;
  at::Tensor x = hidden_states;
  const bool spatial = x.dim() == 4;
  int64_t b = x.size(0), c = x.size(1), h = 0, w = 0;
  if (spatial) {
    h = x.size(2);
    w = x.size(3);
    x = x.view({b, c, h * w}).transpose(1, 2);
  }
  if (group_norm) x = group_norm->forward(x.transpose(1, 2)).transpose(1, 2);
  const at::Tensor& context = encoder_hidden_states.defined() ? encoder_hidden_states : x;
  const at::Tensor q = SplitHeads(to_q->forward(x), attention_.heads);
  const at::Tensor k = SplitHeads(to_k->forward(context), attention_.heads);
  const at::Tensor v = SplitHeads(to_v->forward(context), attention_.heads);
  AttentionCoreOptions core = core_;
  core.scale = 1.0 / std::sqrt(static_cast<double>(attention_.dim_head));
  core.causal = false;
  at::Tensor out = MergeHeads(ScaledDotProductAttention(q, k, v, attention_mask, core));
  out = to_out_proj->forward(out);
  if (spatial) out = out.transpose(-1, -2).reshape({b, c, h, w});
  if (attention_.residual_connection) out = out + residual;
  if (attention_.rescale_output_factor != 1.0) out = out / attention_.rescale_output_factor;
  return out;
}

void SetAttentionCoreOptions(torch::nn::Module& root, const AttentionCoreOptions& core) {
  for (const auto& module : root.modules(/*include_self=*/true)) {
    if (auto* attention = dynamic_cast<AttentionImpl*>(module.get())) {
      attention->SetCoreOptions(core);
    } else if (auto* clip = dynamic_cast<ClipAttentionImpl*>(module.get())) {
      clip->SetCoreOptions(core);
    }
  }
}

}  // namespace imginterp::nn
