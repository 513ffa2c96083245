// CPU kernel of the scsa_yolo::scsa op (registered in scsa_yolo/nn/scsa_fused.py): the whole block, forward and
// backward, in three passes over the map each way, with the small gate computations as plain loops instead of ~30
// tensor ops.
//
// Maths (per sample, C channels, H x W map x; see scsa_yolo/nn/scsa.py for the module and its reference path):
//   row means rm (C, H) and column means cm (C, W) of x
//   ah = sigmoid(GN4_h(dwconv(rm))), aw = sigmoid(GN4_w(dwconv(cm)))       the SMSA gates, one conv per channel group
//   z = x * ah[:, :, None] * aw[:, None, :]
//   P = window means of z (wh x ww windows, floor mode: trailing rows/columns that fill no window are not pooled)
//   y = GN1(P); q, k, v = per-channel scale (+ bias) of y, as (heads, d, N) with N = pooled pixels
//   A = softmax(scaler * q k^T) per head (d x d); o = A @ mean_N(v); cg = sigmoid(o)
//   out = z * cg[:, None, None]
// Backward follows the same graph in reverse; the comments at each step give the derivative it applies.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int kGroups = 4;

// Parameters in the order of PARAMETERS in scsa_yolo/nn/scsa_fused.py (q/k/v biases are empty tensors when the
// block has none); the statistics forward returns after the output are the op's, in STATISTICS' order there.
enum Param {
  kConvWeight0 = 0, kConvBias0 = 4, kNormHWeight = 8, kNormHBias, kNormWWeight, kNormWBias, kNormWeight, kNormBias,
  kQWeight, kKWeight, kVWeight, kQBias, kKBias, kVBias, kParamCount
};
constexpr size_t kSavedCount = 14;  // what forward returns after the output when keep_for_backward

struct Geometry {
  int64_t batch, channels, height, width;
  int64_t window_h, window_w, pooled_h, pooled_w, pooled;  // pooled = pooled_h * pooled_w
  int64_t heads, head_dim, group_channels;
  int64_t kernel[kGroups];

  int64_t plane() const { return height * width; }
  int64_t covered_rows() const { return pooled_h * window_h; }
  int64_t covered_cols() const { return pooled_w * window_w; }
};

template <typename T>
struct Weights {
  const T* conv_weight[kGroups];
  const T* conv_bias[kGroups];
  const T *norm_h_weight, *norm_h_bias, *norm_w_weight, *norm_w_bias, *norm_weight, *norm_bias;
  const T *q_weight, *k_weight, *v_weight, *q_bias, *k_bias, *v_bias;  // biases may be null

  explicit Weights(const std::vector<at::Tensor>& params) {
    for (int g = 0; g < kGroups; ++g) {
      conv_weight[g] = params[kConvWeight0 + g].data_ptr<T>();
      conv_bias[g] = params[kConvBias0 + g].data_ptr<T>();
    }
    norm_h_weight = params[kNormHWeight].data_ptr<T>();
    norm_h_bias = params[kNormHBias].data_ptr<T>();
    norm_w_weight = params[kNormWWeight].data_ptr<T>();
    norm_w_bias = params[kNormWBias].data_ptr<T>();
    norm_weight = params[kNormWeight].data_ptr<T>();
    norm_bias = params[kNormBias].data_ptr<T>();
    q_weight = params[kQWeight].data_ptr<T>();
    k_weight = params[kKWeight].data_ptr<T>();
    v_weight = params[kVWeight].data_ptr<T>();
    const bool has_bias = params[kQBias].numel() > 0;
    q_bias = has_bias ? params[kQBias].data_ptr<T>() : nullptr;
    k_bias = has_bias ? params[kKBias].data_ptr<T>() : nullptr;
    v_bias = has_bias ? params[kVBias].data_ptr<T>() : nullptr;
  }
};

// Splits [0, count) across intra-op threads in chunks of at least ~32k map elements.
template <typename F>
void parallel_channels(int64_t count, int64_t plane, const F& body) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(plane, 1));
  at::parallel_for(0, count, grain, body);
}

// ---- GroupNorm over one group's contiguous values ---------------------------------------------------------------

// normed = (values - mean) / sqrt(var + eps) (biased variance, statistics in double); returns 1 / sqrt(var + eps).
template <typename T>
T normalize(const T* values, int64_t count, double eps, T* normed) {
  double sum = 0;
  for (int64_t e = 0; e < count; ++e) sum += values[e];
  const double mean = sum / count;
  double var = 0;
  for (int64_t e = 0; e < count; ++e) var += (values[e] - mean) * (values[e] - mean);
  const double inv_std = 1.0 / std::sqrt(var / count + eps);
  for (int64_t e = 0; e < count; ++e) normed[e] = T((values[e] - mean) * inv_std);
  return T(inv_std);
}

// In place, d normed -> d values: inv_std * (dn - mean(dn) - normed * mean(dn * normed)).
template <typename T>
void normalize_backward(T* grad, const T* normed, int64_t count, T inv_std) {
  double sum_dn = 0, sum_dn_n = 0;
  for (int64_t e = 0; e < count; ++e) {
    sum_dn += grad[e];
    sum_dn_n += grad[e] * normed[e];
  }
  const T mean_dn = T(sum_dn / count), mean_dn_n = T(sum_dn_n / count);
  for (int64_t e = 0; e < count; ++e) grad[e] = inv_std * (grad[e] - mean_dn - normed[e] * mean_dn_n);
}

// ---- SMSA on one (C, L) profile of one sample ------------------------------------------------------------------

// For channel group g of one sample: conv_out = dwconv(profile), then GroupNorm(4) (normalised values in `normed`,
// 1/std in `rstd[g]`) and the affine into `gate_logits` (the caller applies one vectorised sigmoid).
template <typename T>
void profile_gate_forward(const Geometry& geo, const Weights<T>& wt, int g, int64_t length, const T* profile,
                          const T* gamma, const T* beta, double eps, T* conv_out, T* normed, T* gate_logits,
                          T* rstd) {
  const int64_t gc = geo.group_channels, kernel = geo.kernel[g], half = kernel / 2;
  for (int64_t local = 0; local < gc; ++local) {
    const int64_t c = g * gc + local;
    const T* w = wt.conv_weight[g] + local * kernel;
    const T* in = profile + c * length;
    T* out = conv_out + c * length;
    std::fill(out, out + length, wt.conv_bias[g][local]);
    for (int64_t t = 0; t < kernel; ++t) {  // tap-major, so the inner loop runs along the profile and vectorises
      const int64_t shift = t - half;
      const T tap = w[t];
#pragma omp simd
      for (int64_t i = std::max<int64_t>(0, -shift); i < std::min<int64_t>(length, length - shift); ++i) {
        out[i] += tap * in[i + shift];
      }
    }
  }
  const int64_t begin = g * gc * length;
  rstd[g] = normalize(conv_out + begin, gc * length, eps, normed + begin);
  for (int64_t local = 0; local < gc; ++local) {
    const int64_t c = g * gc + local;
    for (int64_t i = 0; i < length; ++i) gate_logits[c * length + i] = normed[c * length + i] * gamma[c] + beta[c];
  }
}

// From d loss / d gate (`grad_gate`, overwritten as scratch) to d loss / d profile (`grad_profile`, written), adding
// the conv and GroupNorm parameter gradients into the grad arrays.
template <typename T>
void profile_gate_backward(const Geometry& geo, const Weights<T>& wt, int64_t length, const T* profile,
                           const T* gamma, const T* normed, const T* gate, const T* rstd, T* grad_gate,
                           T* grad_profile, T* const* grad_conv_weight, T* const* grad_conv_bias, T* grad_gamma,
                           T* grad_beta) {
  const int64_t gc = geo.group_channels;
  std::fill(grad_profile, grad_profile + geo.channels * length, T(0));
  for (int g = 0; g < kGroups; ++g) {
    const int64_t kernel = geo.kernel[g], half = kernel / 2, count = gc * length;
    // gate = sigmoid(s), s = n * gamma + beta: ds = dgate * gate * (1 - gate); dn = ds * gamma.
    for (int64_t local = 0; local < gc; ++local) {
      const int64_t c = g * gc + local;
      T dgamma = 0, dbeta = 0;
      for (int64_t i = 0; i < length; ++i) {
        const int64_t e = c * length + i;
        const T ds = grad_gate[e] * gate[e] * (T(1) - gate[e]);
        dgamma += ds * normed[e];
        dbeta += ds;
        grad_gate[e] = ds * gamma[c];
      }
      grad_gamma[c] += dgamma;
      grad_beta[c] += dbeta;
    }
    const int64_t begin = g * gc * length;
    normalize_backward(grad_gate + begin, normed + begin, count, rstd[g]);  // grad_gate now holds d conv_out
    for (int64_t local = 0; local < gc; ++local) {
      const int64_t c = g * gc + local;
      const T* w = wt.conv_weight[g] + local * kernel;
      const T* in = profile + c * length;
      T* dw = grad_conv_weight[g] + local * kernel;
      T* dprofile = grad_profile + c * length;
      const T* dconv = grad_gate + c * length;
      T dbias = 0;
      for (int64_t i = 0; i < length; ++i) dbias += dconv[i];
      for (int64_t t = 0; t < kernel; ++t) {
        const int64_t shift = t - half;
        const T tap = w[t];
        const int64_t i_begin = std::max<int64_t>(0, -shift), i_end = std::min<int64_t>(length, length - shift);
        T dtap = 0;
#pragma omp simd reduction(+ : dtap)
        for (int64_t i = i_begin; i < i_end; ++i) {
          dtap += dconv[i] * in[i + shift];
          dprofile[i + shift] += tap * dconv[i];
        }
        dw[t] += dtap;
      }
      grad_conv_bias[g][local] += dbias;
    }
  }
}

// ---- PCSA on one sample ----------------------------------------------------------------------------------------

// From GroupNorm(1)'s normalised pooled map (C, N): y = normed * gamma + beta, q and k (C, N), and mean_N(v) (C);
// `y` and `mean_v` may be null where the caller does not need them.
template <typename T>
void project_qkv(const Geometry& geo, const Weights<T>& wt, const T* normed, T* y, T* q, T* k, T* mean_v) {
  const int64_t n_count = geo.pooled;
  for (int64_t c = 0; c < geo.channels; ++c) {
    const T gamma = wt.norm_weight[c], beta = wt.norm_bias[c];
    const T qb = wt.q_bias ? wt.q_bias[c] : T(0), kb = wt.k_bias ? wt.k_bias[c] : T(0);
    T v_sum = 0;
    for (int64_t n = 0; n < n_count; ++n) {
      const int64_t e = c * n_count + n;
      const T value = normed[e] * gamma + beta;
      if (y) y[e] = value;
      q[e] = wt.q_weight[c] * value + qb;
      k[e] = wt.k_weight[c] * value + kb;
      v_sum += value;
    }
    if (mean_v) mean_v[c] = wt.v_weight[c] * (v_sum / T(n_count)) + (wt.v_bias ? wt.v_bias[c] : T(0));
  }
}

// a[i] = exp(a[i] - shift) in place; returns the sum. float uses ATen's vectorised exp (exp_u20, relative error
// about 1e-6, vectorised for the instruction set the build targets), double the exact std::exp.
template <typename T>
T shifted_exp_sum(T* a, int64_t n, T shift) {
  T total = 0;
  for (int64_t i = 0; i < n; ++i) {
    a[i] = std::exp(a[i] - shift);
    total += a[i];
  }
  return total;
}

template <>
float shifted_exp_sum<float>(float* a, int64_t n, float shift) {
  using Vec = at::vec::Vectorized<float>;
  const Vec shift_vec(shift);
  Vec sum_vec(0.f);
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) {
    const Vec value = (Vec::loadu(a + i) - shift_vec).exp_u20();
    value.store(a + i);
    sum_vec = sum_vec + value;
  }
  float lanes[Vec::size()];
  sum_vec.store(lanes);
  float total = 0;
  for (int64_t lane = 0; lane < Vec::size(); ++lane) total += lanes[lane];
  for (; i < n; ++i) {
    a[i] = std::exp(a[i] - shift);
    total += a[i];
  }
  return total;
}

// One sample's attention: A = row-softmax(scaler * q k^T) per head into `attn` (heads, d, d), the channel logits
// o = A @ mean_v and the gate sigmoid(o). Plain loops: at these sizes BLAS and ATen's softmax cost more in call and
// cold-cache overhead inside a network than the arithmetic.
template <typename T>
void attention_forward(const Geometry& geo, const T* q, const T* k, const T* mean_v, T scaler, T* attn, T* logits,
                       T* channel_gate, T* k_transposed) {
  const int64_t d = geo.head_dim, N = geo.pooled;
  for (int64_t head = 0; head < geo.heads; ++head) {
    const T* qh = q + head * d * N;
    const T* kh = k + head * d * N;
    for (int64_t c = 0; c < d; ++c) {
      for (int64_t n = 0; n < N; ++n) k_transposed[n * d + c] = kh[c * N + n];
    }
    const T* v = mean_v + head * d;
    for (int64_t row = 0; row < d; ++row) {
      T* a = attn + (head * d + row) * d;
      std::fill(a, a + d, T(0));
      for (int64_t n = 0; n < N; ++n) {
        const T qv = qh[row * N + n] * scaler;
        const T* kt = k_transposed + n * d;
#pragma omp simd
        for (int64_t col = 0; col < d; ++col) a[col] += qv * kt[col];
      }
      T peak = a[0];
#pragma omp simd reduction(max : peak)
      for (int64_t col = 1; col < d; ++col) peak = std::max(peak, a[col]);
      const T inv_total = T(1) / shifted_exp_sum(a, d, peak);
      T o = 0;
#pragma omp simd reduction(+ : o)
      for (int64_t col = 0; col < d; ++col) {
        a[col] *= inv_total;
        o += a[col] * v[col];
      }
      logits[head * d + row] = o;
      channel_gate[head * d + row] = T(1) / (T(1) + std::exp(-o));
    }
  }
}

void check_inputs(const at::Tensor& x, const std::vector<at::Tensor>& params, int64_t window_h, int64_t window_w,
                  int64_t heads) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "scsa_cpu: expected a 4-D CPU tensor, got ", x.sizes());
  TORCH_CHECK(params.size() == kParamCount, "scsa_cpu: expected ", int(kParamCount), " parameters");
  const int64_t C = x.size(1);
  TORCH_CHECK(C % kGroups == 0 && heads >= 1 && C % heads == 0, "scsa_cpu: ", C, " channels for ", heads, " heads");
  TORCH_CHECK(window_h >= 1 && window_w >= 1 && x.size(2) >= window_h && x.size(3) >= window_w,
              "scsa_cpu: window ", window_h, "x", window_w, " for a ", x.size(2), "x", x.size(3), " map");
  const bool has_bias = params[kQBias].numel() > 0;
  for (int index = 0; index < kParamCount; ++index) {
    const auto& p = params[index];
    TORCH_CHECK(p.scalar_type() == x.scalar_type() && p.device().is_cpu(),
                "scsa_cpu: parameters must be CPU tensors of the input's dtype");
    int64_t expected = C;
    if (index < kConvBias0) expected = C / kGroups * p.size(-1);  // (C / 4, 1, kernel) weights
    else if (index < kNormHWeight) expected = C / kGroups;
    else if (index >= kQBias) expected = has_bias ? C : 0;
    TORCH_CHECK(p.numel() == expected, "scsa_cpu: parameter ", index, " has ", p.numel(), " values for ", C,
                " channels, expected ", expected);
  }
}

Geometry make_geometry(const at::Tensor& x, const std::vector<at::Tensor>& params, int64_t window_h, int64_t window_w,
                       int64_t heads) {
  Geometry geo{};
  geo.batch = x.size(0);
  geo.channels = x.size(1);
  geo.height = x.size(2);
  geo.width = x.size(3);
  geo.window_h = window_h;
  geo.window_w = window_w;
  geo.pooled_h = geo.height / window_h;
  geo.pooled_w = geo.width / window_w;
  geo.pooled = geo.pooled_h * geo.pooled_w;
  geo.heads = heads;
  geo.head_dim = geo.channels / heads;
  geo.group_channels = geo.channels / kGroups;
  for (int g = 0; g < kGroups; ++g) geo.kernel[g] = params[kConvWeight0 + g].size(-1);
  return geo;
}

// ---- forward ---------------------------------------------------------------------------------------------------

template <typename T>
std::vector<at::Tensor> forward_impl(const at::Tensor& x_in, const std::vector<at::Tensor>& params, int64_t window_h,
                                     int64_t window_w, int64_t heads, double scaler, double eps_h, double eps_w,
                                     double eps, bool keep_for_backward) {
  const at::Tensor x = x_in.contiguous();
  const Geometry geo = make_geometry(x, params, window_h, window_w, heads);
  const Weights<T> wt(params);
  const int64_t B = geo.batch, C = geo.channels, H = geo.height, W = geo.width, plane = geo.plane();
  const auto options = x.options();

  at::Tensor row_means = at::empty({B, C, H}, options), col_means = at::empty({B, C, W}, options);
  at::Tensor row_gate = at::empty({B, C, H}, options), col_gate = at::empty({B, C, W}, options);
  at::Tensor row_normed = at::empty({B, C, H}, options), col_normed = at::empty({B, C, W}, options);
  at::Tensor row_rstd = at::empty({B, kGroups}, options), col_rstd = at::empty({B, kGroups}, options);
  at::Tensor pooled = at::empty({B, C, geo.pooled}, options), pooled_normed = at::empty({B, C, geo.pooled}, options);
  at::Tensor pooled_rstd = at::empty({B}, options);
  at::Tensor q = at::empty({B, heads, geo.head_dim, geo.pooled}, options), k = at::empty_like(q);
  at::Tensor mean_v = at::empty({B, C}, options), logits = at::empty({B, C}, options);
  at::Tensor out = at::empty_like(x);

  const T* xp = x.data_ptr<T>();
  T* rm = row_means.data_ptr<T>();
  T* cm = col_means.data_ptr<T>();

  // Passes 1 and 2 per (sample, channel group), so that the group's slice of x is still in cache for pass 2:
  // GroupNorm(4) makes the gates of a group depend on that group's channels only.
  T* pool = pooled.data_ptr<T>();
  const T* ah = row_gate.data_ptr<T>();
  const T* aw = col_gate.data_ptr<T>();
  const T inv_area = T(1) / T(geo.window_h * geo.window_w);
  const int64_t gc = geo.group_channels;
  std::vector<T> scratch(C * std::max(H, W));
  for (int64_t b = 0; b < B; ++b) {
    for (int g = 0; g < kGroups; ++g) {
      const int64_t first = b * C + g * gc;
      // Pass 1: row and column means.
      parallel_channels(gc, plane, [&](int64_t begin, int64_t end) {
        for (int64_t bc = first + begin; bc < first + end; ++bc) {
          const T* src = xp + bc * plane;
          T* col = cm + bc * W;
          std::fill(col, col + W, T(0));
          for (int64_t i = 0; i < H; ++i) {
            const T* row = src + i * W;
            T sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < W; ++j) sum += row[j];
            rm[bc * H + i] = sum / T(W);
#pragma omp simd
            for (int64_t j = 0; j < W; ++j) col[j] += row[j];
          }
          for (int64_t j = 0; j < W; ++j) col[j] /= T(H);
        }
      });
      // SMSA gates of the group.
      profile_gate_forward(geo, wt, g, H, rm + b * C * H, wt.norm_h_weight, wt.norm_h_bias, eps_h, scratch.data(),
                           row_normed.data_ptr<T>() + b * C * H, row_gate.data_ptr<T>() + b * C * H,
                           row_rstd.data_ptr<T>() + b * kGroups);
      profile_gate_forward(geo, wt, g, W, cm + b * C * W, wt.norm_w_weight, wt.norm_w_bias, eps_w, scratch.data(),
                           col_normed.data_ptr<T>() + b * C * W, col_gate.data_ptr<T>() + b * C * W,
                           col_rstd.data_ptr<T>() + b * kGroups);
      row_gate[b].narrow(0, g * gc, gc).sigmoid_();
      col_gate[b].narrow(0, g * gc, gc).sigmoid_();
      // Pass 2: window means of x * ah * aw: per window of rows, sum ah[i] * x[i, :], then weight by aw and sum
      // each window of columns.
      parallel_channels(gc, plane, [&](int64_t begin, int64_t end) {
        std::vector<T> band(W);
        for (int64_t bc = first + begin; bc < first + end; ++bc) {
          const T* src = xp + bc * plane;
          const T* row_g = ah + bc * H;
          const T* col_g = aw + bc * W;
          for (int64_t p = 0; p < geo.pooled_h; ++p) {
            std::fill(band.begin(), band.end(), T(0));
            for (int64_t i = p * geo.window_h; i < (p + 1) * geo.window_h; ++i) {
              const T* row = src + i * W;
              const T gain = row_g[i];
              T* acc = band.data();
#pragma omp simd
              for (int64_t j = 0; j < geo.covered_cols(); ++j) acc[j] += gain * row[j];
            }
            for (int64_t qw = 0; qw < geo.pooled_w; ++qw) {
              T sum = 0;
              for (int64_t j = qw * geo.window_w; j < (qw + 1) * geo.window_w; ++j) sum += band[j] * col_g[j];
              pool[bc * geo.pooled + p * geo.pooled_w + qw] = sum * inv_area;
            }
          }
        }
      });
    }
  }

  // PCSA per sample: GroupNorm(1), q/k/v, attention, channel gate.
  T* pn = pooled_normed.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t offset = b * C * geo.pooled;
    pooled_rstd.data_ptr<T>()[b] = normalize(pool + offset, C * geo.pooled, eps, pn + offset);
    project_qkv<T>(geo, wt, pn + offset, nullptr, q.data_ptr<T>() + offset, k.data_ptr<T>() + offset,
                   mean_v.data_ptr<T>() + b * C);
  }
  at::Tensor attn = at::empty({B, heads, geo.head_dim, geo.head_dim}, options);
  at::Tensor channel_gate = at::empty({B, C}, options);
  {
    std::vector<T> k_transposed(geo.pooled * geo.head_dim);
    for (int64_t b = 0; b < B; ++b) {
      attention_forward(geo, q.data_ptr<T>() + b * C * geo.pooled, k.data_ptr<T>() + b * C * geo.pooled,
                        mean_v.data_ptr<T>() + b * C, T(scaler), attn.data_ptr<T>() + b * C * geo.head_dim,
                        logits.data_ptr<T>() + b * C, channel_gate.data_ptr<T>() + b * C, k_transposed.data());
    }
  }

  // Pass 3: out = x * (ah * cg) * aw.
  const T* cg = channel_gate.data_ptr<T>();
  T* op = out.data_ptr<T>();
  parallel_channels(B * C, plane, [&](int64_t begin, int64_t end) {
    for (int64_t bc = begin; bc < end; ++bc) {
      const T* src = xp + bc * plane;
      T* dst = op + bc * plane;
      const T* col_g = aw + bc * W;
      for (int64_t i = 0; i < H; ++i) {
        const T gain = ah[bc * H + i] * cg[bc];
#pragma omp simd
        for (int64_t j = 0; j < W; ++j) dst[i * W + j] = src[i * W + j] * gain * col_g[j];
      }
    }
  });

  if (!keep_for_backward) return {out};
  return {out,        row_means, col_means, row_normed, col_normed, row_gate, col_gate, row_rstd, col_rstd,
          pooled_normed, pooled_rstd, attn, mean_v, logits, channel_gate};
}

// ---- backward --------------------------------------------------------------------------------------------------

template <typename T>
std::vector<at::Tensor> backward_impl(const at::Tensor& grad_in, const at::Tensor& x_in,
                                      const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& saved,
                                      int64_t window_h, int64_t window_w, int64_t heads, double scaler,
                                      bool input_needs_grad) {
  const at::Tensor x = x_in.contiguous(), grad = grad_in.contiguous();
  const Geometry geo = make_geometry(x, params, window_h, window_w, heads);
  const Weights<T> wt(params);
  const int64_t B = geo.batch, C = geo.channels, H = geo.height, W = geo.width, plane = geo.plane();
  const int64_t N = geo.pooled, d = geo.head_dim, rows = geo.covered_rows(), cols = geo.covered_cols();
  const auto options = x.options();
  const T *rm = saved[0].data_ptr<T>(), *cm = saved[1].data_ptr<T>();
  const T *row_normed = saved[2].data_ptr<T>(), *col_normed = saved[3].data_ptr<T>();
  const T *ah = saved[4].data_ptr<T>(), *aw = saved[5].data_ptr<T>();
  const T *row_rstd = saved[6].data_ptr<T>(), *col_rstd = saved[7].data_ptr<T>();
  const T *pooled_normed = saved[8].data_ptr<T>(), *pooled_rstd = saved[9].data_ptr<T>();
  const T *attn = saved[10].data_ptr<T>(), *mean_v = saved[11].data_ptr<T>(), *logits = saved[12].data_ptr<T>();
  const T* cg = saved[13].data_ptr<T>();

  std::vector<at::Tensor> grads;
  grads.reserve(kParamCount + 1);
  grads.push_back(at::Tensor());
  for (const auto& p : params) grads.push_back(at::zeros_like(p));
  auto grad_ptr = [&](int index) { return grads[1 + index].template data_ptr<T>(); };

  // Pass 1 (reads grad and x), per channel: g_row[i] = sum_j g x aw, g_col[j] = sum_i g x ah,
  // d cg = sum_i ah[i] g_row[i], and for the pooling branch xa_band[p, j] = sum_{i in window row p} x ah.
  at::Tensor g_row = at::empty({B, C, H}, options), g_col = at::empty({B, C, W}, options);
  at::Tensor grad_cg = at::empty({B, C}, options);
  at::Tensor xa_band = at::empty({B, C, geo.pooled_h, W}, options);
  const T* xp = x.data_ptr<T>();
  const T* gp = grad.data_ptr<T>();
  {
    T *gr = g_row.data_ptr<T>(), *gc = g_col.data_ptr<T>(), *dcg = grad_cg.data_ptr<T>();
    T* band = xa_band.data_ptr<T>();
    parallel_channels(B * C, plane, [&](int64_t begin, int64_t end) {
      for (int64_t bc = begin; bc < end; ++bc) {
        const T* src = xp + bc * plane;
        const T* g = gp + bc * plane;
        const T* col_g = aw + bc * W;
        T* col_acc = gc + bc * W;
        T* band_acc = band + bc * geo.pooled_h * W;
        std::fill(col_acc, col_acc + W, T(0));
        std::fill(band_acc, band_acc + geo.pooled_h * W, T(0));
        T channel = 0;
        for (int64_t i = 0; i < H; ++i) {
          const T* row = src + i * W;
          const T* grow = g + i * W;
          const T gain = ah[bc * H + i];
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < W; ++j) {
            const T gx = grow[j] * row[j];
            sum += gx * col_g[j];
            col_acc[j] += gx * gain;
          }
          gr[bc * H + i] = sum;
          channel += gain * sum;
          if (i < rows) {
            T* band_row = band_acc + (i / geo.window_h) * W;
#pragma omp simd
            for (int64_t j = 0; j < W; ++j) band_row[j] += row[j] * gain;
          }
        }
        dcg[bc] = channel;
      }
    });
  }

  // PCSA backward per sample.
  //   cg = sigmoid(o): do = dcg cg (1 - cg); o = A mean_v: dA = do mean_v^T, d mean_v = A^T do;
  //   softmax rows: dS = A (dA - rowsum(A dA)) = A do (mean_v^T - o); S = scaler q k^T: dq = scaler dS k,
  //   dk = scaler dS^T q; v = wv y + bv averaged over N: dv = d mean_v / N at every pixel.
  at::Tensor y = at::empty({B, C, N}, options);
  at::Tensor q = at::empty({B, heads, d, N}, options), k = at::empty_like(q);
  at::Tensor grad_scores = at::empty({B, heads, d, d}, options);
  at::Tensor grad_mean_v = at::zeros({B, C}, options);
  {
    const T* dcg = grad_cg.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t offset = b * C * N;
      project_qkv<T>(geo, wt, pooled_normed + offset, y.data_ptr<T>() + offset, q.data_ptr<T>() + offset,
                     k.data_ptr<T>() + offset, nullptr);
      const T* a = attn + b * C * d;
      T* ds = grad_scores.data_ptr<T>() + b * C * d;
      T* dmv = grad_mean_v.data_ptr<T>() + b * C;
      for (int64_t head = 0; head < heads; ++head) {
        for (int64_t row = 0; row < d; ++row) {
          const int64_t c = head * d + row;
          const T gate = cg[b * C + c];
          const T d_logit = dcg[b * C + c] * gate * (T(1) - gate);
          const T o = logits[b * C + c];
          for (int64_t col = 0; col < d; ++col) {
            const T a_value = a[(head * d + row) * d + col];
            ds[(head * d + row) * d + col] = a_value * d_logit * (mean_v[b * C + head * d + col] - o) * T(scaler);
            dmv[head * d + col] += a_value * d_logit;
          }
        }
      }
    }
  }
  // dq = dS k and dk = dS^T q (scaler already in dS), computed as k^T dS^T and q^T dS: BLAS is several times faster
  // with the short N dimension as the rows of the product.
  const at::Tensor grad_q = at::matmul(k.transpose(-2, -1), grad_scores.transpose(-2, -1)).transpose(-2, -1).contiguous();
  const at::Tensor grad_k = at::matmul(q.transpose(-2, -1), grad_scores).transpose(-2, -1).contiguous();
  at::Tensor grad_pooled = at::empty({B, C, N}, options);  // d loss / d window means
  {
    const T *dq = grad_q.data_ptr<T>(), *dk = grad_k.data_ptr<T>(), *yp = y.data_ptr<T>();
    const T* dmv = grad_mean_v.data_ptr<T>();
    T *dwq = grad_ptr(kQWeight), *dwk = grad_ptr(kKWeight), *dwv = grad_ptr(kVWeight);
    T *dbq = wt.q_bias ? grad_ptr(kQBias) : nullptr, *dbk = wt.k_bias ? grad_ptr(kKBias) : nullptr;
    T* dbv = wt.v_bias ? grad_ptr(kVBias) : nullptr;
    T *dgamma = grad_ptr(kNormWeight), *dbeta = grad_ptr(kNormBias);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t offset = b * C * N;
      T* dpool = grad_pooled.data_ptr<T>() + offset;  // d normed first, turned into d window means below
      for (int64_t c = 0; c < C; ++c) {
        const T dv = dmv[b * C + c] / T(N);
        T swq = 0, swk = 0, sbq = 0, sbk = 0, sy = 0, dgam = 0, dbet = 0;
        for (int64_t n = 0; n < N; ++n) {
          const int64_t e = offset + c * N + n;
          const T dqe = dq[e], dke = dk[e], ye = yp[e];
          swq += dqe * ye;
          swk += dke * ye;
          sbq += dqe;
          sbk += dke;
          sy += ye;
          const T dy = wt.q_weight[c] * dqe + wt.k_weight[c] * dke + wt.v_weight[c] * dv;
          dgam += dy * pooled_normed[e];
          dbet += dy;
          dpool[c * N + n] = dy * wt.norm_weight[c];
        }
        dwq[c] += swq;
        dwk[c] += swk;
        dwv[c] += dv * sy;
        if (dbq) {
          dbq[c] += sbq;
          dbk[c] += sbk;
          dbv[c] += dmv[b * C + c];
        }
        dgamma[c] += dgam;
        dbeta[c] += dbet;
      }
      normalize_backward(dpool, pooled_normed + offset, C * N, pooled_rstd[b]);
    }
  }

  // Gate gradients: d ah[i] = cg g_row[i] + sum_j x[i, j] aw[j] dP[p(i), q(j)] / area (a second read of x, rows
  // inside windows), d aw[j] = cg g_col[j] + sum_p dP[p, q(j)] xa_band[p, j] / area (columns inside windows).
  const T inv_area = T(1) / T(geo.window_h * geo.window_w);
  std::vector<int64_t> window_of_col(W, -1);  // q(j), -1 past the last full window
  for (int64_t j = 0; j < cols; ++j) window_of_col[j] = j / geo.window_w;
  // dP[p, q(j)] / area for column j, given window row p's dP (0 past the last full window).
  const auto window_grad = [&](const T* dp_row, int64_t j) {
    return window_of_col[j] < 0 ? T(0) : dp_row[window_of_col[j]] * inv_area;
  };
  at::Tensor grad_ah = at::empty({B, C, H}, options), grad_aw = at::empty({B, C, W}, options);
  {
    const T *gr = g_row.data_ptr<T>(), *gc = g_col.data_ptr<T>(), *dpool = grad_pooled.data_ptr<T>();
    const T* band = xa_band.data_ptr<T>();
    T *dah = grad_ah.data_ptr<T>(), *daw = grad_aw.data_ptr<T>();
    parallel_channels(B * C, plane, [&](int64_t begin, int64_t end) {
      std::vector<T> spread(W);
      for (int64_t bc = begin; bc < end; ++bc) {
        const T* src = xp + bc * plane;
        const T* col_g = aw + bc * W;
        const T* dp = dpool + bc * N;
        const T gate = cg[bc];
        for (int64_t j = 0; j < W; ++j) daw[bc * W + j] = gate * gc[bc * W + j];
        for (int64_t i = 0; i < H; ++i) dah[bc * H + i] = gate * gr[bc * H + i];
        for (int64_t p = 0; p < geo.pooled_h; ++p) {
          const T* dp_row = dp + p * geo.pooled_w;
          const T* band_row = band + (bc * geo.pooled_h + p) * W;
          for (int64_t j = 0; j < W; ++j) {
            const T d = window_grad(dp_row, j);
            daw[bc * W + j] += d * band_row[j];
            spread[j] = d * col_g[j];
          }
          for (int64_t i = p * geo.window_h; i < (p + 1) * geo.window_h; ++i) {
            const T* row = src + i * W;
            T sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < W; ++j) sum += row[j] * spread[j];
            dah[bc * H + i] += sum;
          }
        }
      }
    });
  }
  // Back through the gates, GroupNorms and convs, per sample.
  at::Tensor grad_rm = at::empty({B, C, H}, options), grad_cm = at::empty({B, C, W}, options);
  {
    T* conv_w_grads[kGroups];
    T* conv_b_grads[kGroups];
    for (int g = 0; g < kGroups; ++g) {
      conv_w_grads[g] = grad_ptr(kConvWeight0 + g);
      conv_b_grads[g] = grad_ptr(kConvBias0 + g);
    }
    T *dah = grad_ah.data_ptr<T>(), *daw = grad_aw.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      profile_gate_backward(geo, wt, H, rm + b * C * H, wt.norm_h_weight, row_normed + b * C * H, ah + b * C * H,
                            row_rstd + b * kGroups, dah + b * C * H, grad_rm.data_ptr<T>() + b * C * H, conv_w_grads,
                            conv_b_grads, grad_ptr(kNormHWeight), grad_ptr(kNormHBias));
      profile_gate_backward(geo, wt, W, cm + b * C * W, wt.norm_w_weight, col_normed + b * C * W, aw + b * C * W,
                            col_rstd + b * kGroups, daw + b * C * W, grad_cm.data_ptr<T>() + b * C * W, conv_w_grads,
                            conv_b_grads, grad_ptr(kNormWWeight), grad_ptr(kNormWBias));
    }
  }

  // Pass 2 (reads grad, writes d x): dx = (g cg + dP[p(i), q(j)] / area) ah[i] aw[j] + d rm[i] / W + d cm[j] / H.
  if (input_needs_grad) {
    at::Tensor grad_x = at::empty_like(x);
    T* dxp = grad_x.data_ptr<T>();
    const T *dpool = grad_pooled.data_ptr<T>(), *drm = grad_rm.data_ptr<T>(), *dcm = grad_cm.data_ptr<T>();
    parallel_channels(B * C, plane, [&](int64_t begin, int64_t end) {
      std::vector<T> spread(W), col_term(W);
      for (int64_t bc = begin; bc < end; ++bc) {
        const T* g = gp + bc * plane;
        T* dst = dxp + bc * plane;
        const T* col_g = aw + bc * W;
        const T gate = cg[bc];
        for (int64_t j = 0; j < W; ++j) col_term[j] = dcm[bc * W + j] / T(H);
        for (int64_t i = 0; i < H; ++i) {
          if (i < rows && i % geo.window_h == 0) {
            const T* dp_row = dpool + bc * N + (i / geo.window_h) * geo.pooled_w;
            for (int64_t j = 0; j < W; ++j) spread[j] = window_grad(dp_row, j);
          } else if (i == rows) {
            std::fill(spread.begin(), spread.end(), T(0));
          }
          const T gain = ah[bc * H + i];
          const T row_term = drm[bc * H + i] / T(W);
          const T* grow = g + i * W;
          T* drow = dst + i * W;
#pragma omp simd
          for (int64_t j = 0; j < W; ++j) {
            drow[j] = (grow[j] * gate + spread[j]) * gain * col_g[j] + row_term + col_term[j];
          }
        }
      }
    });
    grads[0] = grad_x;
  }
  return grads;
}

std::vector<at::Tensor> contiguous(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> result;
  result.reserve(tensors.size());
  for (const auto& t : tensors) result.push_back(t.contiguous());
  return result;
}

std::vector<at::Tensor> scsa_forward(const at::Tensor& x, const std::vector<at::Tensor>& params_in, int64_t window_h,
                                     int64_t window_w, int64_t heads, double scaler, double eps_h, double eps_w,
                                     double eps, bool keep_for_backward) {
  check_inputs(x, params_in, window_h, window_w, heads);
  const std::vector<at::Tensor> params = contiguous(params_in);
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scsa_forward", [&] {
    result = forward_impl<scalar_t>(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps,
                                    keep_for_backward);
  });
  return result;
}

std::vector<at::Tensor> scsa_backward(const at::Tensor& grad, const at::Tensor& x,
                                      const std::vector<at::Tensor>& params_in, const std::vector<at::Tensor>& saved,
                                      int64_t window_h, int64_t window_w, int64_t heads, double scaler,
                                      bool input_needs_grad) {
  check_inputs(x, params_in, window_h, window_w, heads);
  const std::vector<at::Tensor> params = contiguous(params_in);
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(), "scsa_cpu: bad gradient");
  TORCH_CHECK(saved.size() == kSavedCount, "scsa_cpu: expected ", int(kSavedCount), " saved tensors");
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scsa_backward", [&] {
    result = backward_impl<scalar_t>(grad, x, params, saved, window_h, window_w, heads, scaler, input_needs_grad);
  });
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &scsa_forward, "SCSA forward (CPU); returns [out] or [out, *saved]");
  m.def("backward", &scsa_backward, "SCSA backward (CPU); returns [grad_x or None, *parameter grads]");
}
