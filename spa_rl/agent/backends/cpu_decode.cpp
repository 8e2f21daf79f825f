// Kernels of the CPU decode step (spa_rl/agent/backends/cpu_decode.py loads them with ctypes).
//
// gqa_decode: attention of one new token per row over the key/value cache, on the key/value heads.
// rms_norm, rope_store: the small per-layer operations around the matrix products, one call each
// instead of a dozen torch operations (each costs microseconds of dispatch; at ~45 of them per layer
// they took a third of a batch-1 decode step: bench/bench_decode.py --profile). Arithmetic in float32; values stored in the model's dtype are
// rounded to nearest even, as torch rounds.
#include <cmath>
#include <cstdint>
#include <cstring>

template <typename T> static inline float ld(const T* p, long j);
template <> inline float ld<float>(const float* p, long j) { return p[j]; }
template <> inline float ld<uint16_t>(const uint16_t* p, long j) {  // bfloat16 -> float
  uint32_t u = uint32_t(p[j]) << 16; float f; std::memcpy(&f, &u, 4); return f;
}

#if defined(__AVX512F__)
#include <immintrin.h>
static inline __m512 ld16(const float* p) { return _mm512_loadu_ps(p); }
static inline __m512 ld16(const uint16_t* p) {
  __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
// Lane i of the result: the sum of the 16 lanes of a[i] (a fixed tree, 45 instructions for 16 sums).
static inline __m512 sum16x16(__m512* a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  for (int i = 0; i < 2; ++i)
    d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88), _mm512_shuffle_f32x4(d[0], d[1], 0xDD));
}
// 16 keys at a time: their dot products with each query head of the group, reduced together.
template <typename T, int R, int D>
static long scores16(const float* qf, const T* kp, long kl, const float* bp, float* sp, long L, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  long l0 = 0;
  for (; l0 + 16 <= L; l0 += 16) {
    const T* kr = kp + l0 * kl;
    for (int r = 0; r < R; ++r) {
      __m512 qv[D / 16], acc[16];
      for (int c = 0; c < D / 16; ++c) qv[c] = _mm512_loadu_ps(qf + r * D + 16 * c);
      for (int i = 0; i < 16; ++i) {
        acc[i] = _mm512_mul_ps(qv[0], ld16(kr + i * kl));
        for (int c = 1; c < D / 16; ++c) acc[i] = _mm512_fmadd_ps(qv[c], ld16(kr + i * kl + 16 * c), acc[i]);
      }
      _mm512_storeu_ps(sp + r * L + l0, _mm512_fmadd_ps(sum16x16(acc), sc, _mm512_loadu_ps(bp + l0)));
    }
  }
  return l0;
}
#endif

// s[t, r, l] = scale * <q[t, r, :], k[b, h, l, :]> + bias[b, l], t = b * H + h: each key read once for the R
// query heads that share it.
template <typename T, int R, int D>
static void scores(const float* q, const T* k, const float* bias, float* s, long B, long H, long L, long kb,
                   long kh, long kl, long bb, float scale) {
#pragma omp parallel for schedule(static)
  for (long t = 0; t < B * H; ++t) {
    const long b = t / H, h = t % H;
    const float* qf = q + t * R * D;
    const T* kp = k + b * kb + h * kh;
    const float* bp = bias + b * bb;
    float* sp = s + t * R * L;
    long start = 0;
#if defined(__AVX512F__)
    start = scores16<T, R, D>(qf, kp, kl, bp, sp, L, scale);
#endif
    for (long l = start; l < L; ++l) {
      const T* kr = kp + l * kl;
      float acc[R][16];
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < 16; ++j) acc[r][j] = 0.f;
      for (int d0 = 0; d0 < D; d0 += 16)
        for (int j = 0; j < 16; ++j) {
          const float x = ld(kr + d0, j);
          for (int r = 0; r < R; ++r) acc[r][j] += qf[r * D + d0 + j] * x;
        }
      for (int r = 0; r < R; ++r) {  // a fixed tree, which the compiler vectorizes (a chain it can't)
        float a8[8], a4[4];
        for (int j = 0; j < 8; ++j) a8[j] = acc[r][j] + acc[r][j + 8];
        for (int j = 0; j < 4; ++j) a4[j] = a8[j] + a8[j + 4];
        sp[r * L + l] = ((a4[0] + a4[2]) + (a4[1] + a4[3])) * scale + bp[l];
      }
    }
  }
}

static inline uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
static inline void st(float* p, long j, float x) { p[j] = x; }
static inline void st(uint16_t* p, long j, float x) { p[j] = bf16_round(x); }
// x rounded to T's precision (the type of the first argument picks it).
static inline float rounded(const float*, float x) { return x; }
static inline float rounded(const uint16_t*, float x) {
  uint32_t u = uint32_t(bf16_round(x)) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// out[t, r, :] = sum_l p[t, r, l] * v[b, h, l, :] (in T): each value read once.
template <typename T, int R, int D>
static void weighted(const float* p, const T* v, T* out, long B, long H, long L, long vb, long vh, long vl) {
#pragma omp parallel for schedule(static)
  for (long t = 0; t < B * H; ++t) {
    const long b = t / H, h = t % H;
    const T* vp = v + b * vb + h * vh;
    const float* pp = p + t * R * L;
    float acc[R][D];
    for (int r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) acc[r][d] = 0.f;
    for (long l = 0; l < L; ++l) {
      const T* vr = vp + l * vl;
      float w[R];
      for (int r = 0; r < R; ++r) w[r] = pp[r * L + l];
      for (int d = 0; d < D; ++d) {
        const float x = ld(vr, d);
        for (int r = 0; r < R; ++r) acc[r][d] += w[r] * x;
      }
    }
    T* op = out + t * R * D;
    for (int r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) st(op, r * D + d, acc[r][d]);
  }
}

template <typename T, int R, int D>
static void run(int which, const float* a, const T* kv, const float* bias, float* o, long B, long H, long L,
                long sb, long sh, long sl, long bb, float scale) {
  if (which == 0) scores<T, R, D>(a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
  else weighted<T, R, D>(a, kv, (T*)o, B, H, L, sb, sh, sl);
}

template <typename T, int R>
static int by_dim(int which, long D, const float* a, const T* kv, const float* bias, float* o, long B, long H,
                  long L, long sb, long sh, long sl, long bb, float scale) {
  switch (D) {
    case 16: run<T, R, 16>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 32: run<T, R, 32>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 64: run<T, R, 64>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 128: run<T, R, 128>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
  }
  return 1;
}

template <typename T>
static int by_group(int which, long R, long D, const float* a, const T* kv, const float* bias, float* o, long B,
                    long H, long L, long sb, long sh, long sl, long bb, float scale) {
  switch (R) {
    case 1: return by_dim<T, 1>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 2: return by_dim<T, 2>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 3: return by_dim<T, 3>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 4: return by_dim<T, 4>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 5: return by_dim<T, 5>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 6: return by_dim<T, 6>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 7: return by_dim<T, 7>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 8: return by_dim<T, 8>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
  }
  return 1;
}

extern "C" int gqa_decode(int which, int bf16, long R, long D, const void* a, const void* kv, const float* bias,
                          float* o, long B, long H, long L, long sb, long sh, long sl, long bb, float scale) {
  if (bf16)
    return by_group<uint16_t>(which, R, D, (const float*)a, (const uint16_t*)kv, bias, o, B, H, L, sb, sh, sl, bb,
                              scale);
  return by_group<float>(which, R, D, (const float*)a, (const float*)kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
}

// x[b, :] += delta[b, :] (rounded to T; skipped when delta is null), then out[b, :] = the RMS norm of
// x[b, :] times w, as transformers' LlamaRMSNorm: in float32, the normalised value rounded to T before the
// product with the weight.
template <typename T>
static void rms_norm(T* x, const T* delta, const T* w, T* out, long B, long N, float eps) {
  for (long b = 0; b < B; ++b) {
    T* xr = x + b * N;
    if (delta) {
      const T* dr = delta + b * N;
      for (long j = 0; j < N; ++j) st(xr, j, ld(xr, j) + ld(dr, j));
    }
    float acc[16] = {0.f};  // 16 partial sums, so that the loop vectorises
    long j0 = 0;
    for (; j0 + 16 <= N; j0 += 16)
      for (int i = 0; i < 16; ++i) acc[i] += ld(xr, j0 + i) * ld(xr, j0 + i);
    for (long j = j0; j < N; ++j) acc[0] += ld(xr, j) * ld(xr, j);
    for (int k = 8; k > 0; k /= 2)
      for (int i = 0; i < k; ++i) acc[i] += acc[i + k];
    const float inv = 1.f / std::sqrt(acc[0] / float(N) + eps);
    T* orow = out + b * N;
    for (long j = 0; j < N; ++j) {
      st(orow, j, ld(w, j) * rounded(w, ld(xr, j) * inv));
    }
  }
}

// The rotary embedding of the query and key heads of y = [q | k | v] (one row per token, heads of D
// values): rotated queries to q (float32, [B, Hq, D]); the rotated key and the value of each key/value head
// to slot n of the caches kb, vb ([B, H, capacity, D] with strides sb, sh, sl). cos, sin: [B, D] float32.
template <typename T>
static void rope_store(const T* y, const float* cs, const float* sn, float* q, T* kb, T* vb, long B, long Hq,
                       long H, long D, long n, long sb, long sh, long sl) {
  const long half = D / 2, width = (Hq + 2 * H) * D;
  for (long b = 0; b < B; ++b) {
    const T* yr = y + b * width;
    const float* c = cs + b * D;
    const float* s = sn + b * D;
    for (long h = 0; h < Hq + H; ++h) {
      const T* x = yr + h * D;
      for (long d = 0; d < D; ++d) {
        const float rot = d < half ? -ld(x, d + half) : ld(x, d - half);
        const float v = ld(x, d) * c[d] + rot * s[d];
        if (h < Hq) q[(b * Hq + h) * D + d] = v;
        else st(kb + b * sb + (h - Hq) * sh + n * sl, d, v);
      }
    }
    for (long h = 0; h < H; ++h) {
      const T* x = yr + (Hq + H + h) * D;
      T* dst = vb + b * sb + h * sh + n * sl;
      for (long d = 0; d < D; ++d) dst[d] = x[d];
    }
  }
}

extern "C" void rms_norm_f32(float* x, const float* d, const float* w, float* o, long B, long N, float eps) {
  rms_norm<float>(x, d, w, o, B, N, eps);
}
extern "C" void rms_norm_bf16(uint16_t* x, const uint16_t* d, const uint16_t* w, uint16_t* o, long B, long N,
                              float eps) {
  rms_norm<uint16_t>(x, d, w, o, B, N, eps);
}
extern "C" void rope_store_f32(const float* y, const float* c, const float* s, float* q, float* kb, float* vb,
                               long B, long Hq, long H, long D, long n, long sb, long sh, long sl) {
  rope_store<float>(y, c, s, q, kb, vb, B, Hq, H, D, n, sb, sh, sl);
}
extern "C" void rope_store_bf16(const uint16_t* y, const float* c, const float* s, float* q, uint16_t* kb,
                                uint16_t* vb, long B, long Hq, long H, long D, long n, long sb, long sh, long sl) {
  rope_store<uint16_t>(y, c, s, q, kb, vb, B, Hq, H, D, n, sb, sh, sl);
}
