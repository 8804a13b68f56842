#include "benchmarks/diffusion/op_profile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace imginterp::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One operator in progress on the profiled thread.
struct Frame {
  std::string key;  // the operator's name, with its input shapes when the profile asks for them
  Clock::time_point start;
  double child_seconds = 0;
  double flops = 0;
  int64_t conv_macs_per_output = 0;  // convolutions: FLOPs need the output, known at the end
  bool counts_flops = false;         // this operator or one around it counts the FLOPs
  bool absorbs = false;              // a project operator: what runs inside is its own time
};

// The profile this thread records into (null on every other thread, so operators that worker
// threads dispatch inside parallel regions are not counted twice) and its open operators.
thread_local OpProfile* tls_profile = nullptr;
thread_local std::vector<Frame> tls_stack;

// Start callbacks must return a context for the end callback to run with it; this one only says
// "this call was recorded", the state lives on the stack above.
struct Recorded : at::ObserverContext {};

bool IsConvolutionKernel(const char* name) {
  const std::string n = name;
  return n == "aten::mkldnn_convolution" || n == "aten::_slow_conv2d_forward" ||
         n == "aten::_nnpack_spatial_convolution" || n == "aten::slow_conv_dilated2d" ||
         n == "aten::_mkldnn_convolution";
}

// 2*M*N*K for the matrix products ATen reaches from linear and matmul.
double MatmulFlops(const std::string& name, c10::ArrayRef<const c10::IValue> inputs) {
  auto sizes = [&](size_t i) -> std::vector<int64_t> {
    if (i >= inputs.size() || !inputs[i].isTensor()) return {};
    return inputs[i].toTensor().sizes().vec();
  };
  if (name == "aten::mm" || name == "aten::addmm") {
    const size_t first = name == "aten::addmm" ? 1 : 0;
    const auto a = sizes(first), b = sizes(first + 1);
    if (a.size() == 2 && b.size() == 2) return 2.0 * a[0] * a[1] * b[1];
  }
  if (name == "imginterp::linear") {  // x [..., in], weight [out, in]
    const auto x = sizes(0), w = sizes(1);
    if (!x.empty() && w.size() == 2) {
      double rows = 1;
      for (size_t d = 0; d + 1 < x.size(); ++d) rows *= static_cast<double>(x[d]);
      return 2.0 * rows * static_cast<double>(w[0]) * static_cast<double>(w[1]);
    }
  }
  if (name == "imginterp::conv2d" && inputs.size() >= 4 && inputs[2].isInt() &&
      inputs[3].isInt()) {  // x [N, Cin, H, W], weight [Cout, Cin, k, k], stride, padding
    const auto x = sizes(0), w = sizes(1);
    const int64_t stride = inputs[2].toInt(), padding = inputs[3].toInt();
    if (x.size() == 4 && w.size() == 4 && stride > 0) {
      const double h_out = static_cast<double>((x[2] + 2 * padding - w[2]) / stride + 1);
      const double w_out = static_cast<double>((x[3] + 2 * padding - w[3]) / stride + 1);
      return 2.0 * x[0] * h_out * w_out * static_cast<double>(w[0] * w[1] * w[2] * w[3]);
    }
  }
  if (name == "imginterp::attention") {  // q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv]
    const auto q = sizes(0), k = sizes(1), v = sizes(2);
    if (q.size() >= 2 && k.size() >= 2 && v.size() >= 2) {
      double batch = 1;
      for (size_t d = 0; d + 2 < q.size(); ++d) batch *= static_cast<double>(q[d]);
      return 2.0 * batch * q[q.size() - 2] * k[k.size() - 2] * (q.back() + v.back());
    }
  }
  if (name == "aten::bmm" || name == "aten::baddbmm") {
    const size_t first = name == "aten::baddbmm" ? 1 : 0;
    const auto a = sizes(first), b = sizes(first + 1);
    if (a.size() == 3 && b.size() == 3) return 2.0 * a[0] * a[1] * a[2] * b[2];
  }
  return 0;
}

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  if (tls_profile == nullptr) return nullptr;
  // The project's split operators (imginterp::linear, imginterp::attention) run ATen ops on every
  // intra-op thread; only the calling thread's share would be seen here, so what runs inside them
  // counts as their own time.
  if (!tls_stack.empty() && tls_stack.back().absorbs) return nullptr;
  Frame frame;
  const std::string name = fn.name();
  frame.absorbs = name.rfind("imginterp::", 0) == 0;
  frame.key = name;
  if (tls_profile->by_shape) {
    for (const c10::IValue& input : fn.inputs()) {
      if (!input.isTensor()) continue;
      frame.key += " [";
      const auto sizes = input.toTensor().sizes();
      for (size_t d = 0; d < sizes.size(); ++d) {
        frame.key += (d > 0 ? "," : "") + std::to_string(sizes[d]);
      }
      frame.key += "]";
    }
  }
  // FLOPs are counted once, by the outermost operator that knows them (a split product and the
  // ATen products its calling thread runs inside it).
  const bool inside_counted = !tls_stack.empty() && tls_stack.back().counts_flops;
  if (inside_counted) {
    frame.counts_flops = true;
  } else if (IsConvolutionKernel(fn.name()) && fn.inputs().size() > 1 &&
             fn.inputs()[1].isTensor()) {
    const auto w = fn.inputs()[1].toTensor().sizes();  // [out, in / groups, kh, kw]
    if (w.size() == 4) frame.conv_macs_per_output = w[1] * w[2] * w[3];
    frame.counts_flops = frame.conv_macs_per_output > 0;
  } else {
    frame.flops = MatmulFlops(name, fn.inputs());
    frame.counts_flops = frame.flops > 0;
  }
  frame.start = Clock::now();  // last, so that reading the shapes is not counted
  tls_stack.push_back(frame);
  return std::make_unique<Recorded>();
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* context) {
  if (context == nullptr || tls_profile == nullptr || tls_stack.empty()) return;
  const Frame frame = tls_stack.back();
  tls_stack.pop_back();
  const double wall = std::chrono::duration<double>(Clock::now() - frame.start).count();
  OpStats& stats = tls_profile->ops[frame.key];
  ++stats.calls;
  stats.self_seconds += wall - frame.child_seconds;
  stats.flops += frame.flops;
  if (frame.conv_macs_per_output > 0 && !fn.outputs().empty() && fn.outputs()[0].isTensor()) {
    stats.flops += 2.0 * static_cast<double>(fn.outputs()[0].toTensor().numel()) *
                   static_cast<double>(frame.conv_macs_per_output);
  }
  if (tls_stack.empty()) {
    tls_profile->top_level_seconds += wall;
  } else {
    tls_stack.back().child_seconds += wall;
  }
}

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

std::string OpProfile::KindOf(const std::string& op) {
  if (Contains(op, "conv")) return "convolution";
  if (op == "imginterp::attention") return "attention (whole)";
  if (Contains(op, "mm") || Contains(op, "matmul") || Contains(op, "linear")) return "matmul";
  if (Contains(op, "softmax")) return "softmax";
  if (Contains(op, "norm")) return "norm";
  if (Contains(op, "copy") || Contains(op, "contiguous") || Contains(op, "clone") ||
      Contains(op, "cat") || Contains(op, "reshape") || Contains(op, "view") ||
      Contains(op, "transpose") || Contains(op, "permute") || Contains(op, "empty") ||
      Contains(op, "narrow") || Contains(op, "slice") || Contains(op, "chunk") ||
      Contains(op, "split") || Contains(op, "expand") || Contains(op, "unsqueeze") ||
      op == "aten::to" || Contains(op, "resize") || Contains(op, "as_strided") ||
      Contains(op, "upsample") || Contains(op, "pad")) {
    return "copy/layout";
  }
  if (Contains(op, "add") || Contains(op, "mul") || Contains(op, "sub") || Contains(op, "div") ||
      Contains(op, "silu") || Contains(op, "gelu") || Contains(op, "sigmoid") ||
      Contains(op, "relu") || Contains(op, "exp") || Contains(op, "fill")) {
    return "elementwise";
  }
  return "other";
}

void OpProfile::Print(std::FILE* out, int steps, double step_seconds, int top) const {
  const double per = steps > 0 ? 1.0 / steps : 1.0;
  std::vector<std::pair<std::string, OpStats>> rows(ops.begin(), ops.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.self_seconds > b.second.self_seconds;
  });
  auto percent = [&](double seconds) {
    return step_seconds > 0 ? 100.0 * seconds * per / step_seconds : 0.0;
  };
  const int width = by_shape ? 60 : 34;
  std::fprintf(out, "  %-*s %9s %10s %6s %10s %9s\n", width, "operator (self time)", "calls/step",
               "s/step", "%", "GFLOP/step", "GFLOP/s");
  auto print_row = [&](const std::string& label, const OpStats& stats) {
    std::fprintf(out, "  %-*s %9.0f %10.3f %6.1f", width, label.c_str(), stats.calls * per,
                 stats.self_seconds * per, percent(stats.self_seconds));
    if (stats.flops > 0) {
      std::fprintf(out, " %10.1f %9.1f\n", stats.flops * per / 1e9,
                   stats.flops / 1e9 / stats.self_seconds);
    } else {
      std::fprintf(out, " %10s %9s\n", "", "");
    }
  };
  int printed = 0;
  for (const auto& [name, stats] : rows) {
    if (printed++ >= top) break;
    print_row(name, stats);
  }
  std::map<std::string, OpStats> kinds;
  for (const auto& [name, stats] : ops) {
    OpStats& k = kinds[KindOf(name.substr(0, name.find(' ')))];
    k.calls += stats.calls;
    k.self_seconds += stats.self_seconds;
    k.flops += stats.flops;
  }
  std::fprintf(out, "  %-*s %9s %10s %6s %10s %9s\n", width, "by kind", "calls/step", "s/step", "%",
               "GFLOP/step", "GFLOP/s");
  for (const auto& [kind, stats] : kinds) print_row(kind, stats);
  std::fprintf(out, "  %-*s %9s %10.3f %6.1f  (the rest of the step is outside operators)\n", width,
               "all operators", "", top_level_seconds * per, percent(top_level_seconds));
}

ScopedOpProfile::ScopedOpProfile(OpProfile* profile) {
  tls_profile = profile;
  tls_stack.clear();
  handle_ = at::addThreadLocalCallback(
      at::RecordFunctionCallback(&OnStart, &OnEnd).needsInputs(true).needsOutputs(true));
}

ScopedOpProfile::~ScopedOpProfile() {
  at::removeCallback(handle_);
  tls_profile = nullptr;
  tls_stack.clear();
}

}  // namespace imginterp::bench
