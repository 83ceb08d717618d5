#include "letterbox.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define YOLOX_DEPLOY_X86 1
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define YOLOX_DEPLOY_NEON 1
#endif

namespace yolox_deploy::core {
namespace {

constexpr int kWeightOne = 2048;  // 1 << 11, OpenCV's INTER_RESIZE_COEF_SCALE

// One destination coordinate: source index s and weights (w0 for s, w1 for s + 1).
struct Tap {
    int source;
    int w0, w1;
};

// OpenCV's saturate_cast<short>(float): round half to even.
inline int round_weight(float value) { return static_cast<int>(std::nearbyint(value)); }

std::vector<Tap> linear_taps(int source_length, int destination_length) {
    const double scale = 1.0 / (static_cast<double>(destination_length) / source_length);
    std::vector<Tap> taps(static_cast<size_t>(destination_length));
    for (int d = 0; d < destination_length; ++d) {
        float f = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = static_cast<int>(std::floor(f));
        f -= static_cast<float>(s);
        if (s < 0) f = 0.f, s = 0;
        if (s >= source_length - 1) f = 0.f, s = source_length - 1;
        taps[static_cast<size_t>(d)] = Tap{s, round_weight((1.f - f) * kWeightOne), round_weight(f * kWeightOne)};
    }
    return taps;
}

// The horizontal pass per destination pixel x: first[x] is the byte offset of its left source
// pixel, w0/w1 the weights of that pixel and the next (exact in int32). At the right edge OpenCV
// multiplies the last pixel by one: w0 = 2048, w1 = 0, and the next pixel is not read.
struct RowTable {
    std::vector<int> first;
    std::vector<std::int32_t> w0, w1;
    int interior;  // pixels [0, interior) have a next source pixel; the rest sit on the right edge
    // For the vector path: per pixel the int16 pairs (w0, w1) x 3 channels and a zero pair, and the
    // pixels [0, vector_end) whose 8 source bytes lie inside the row (read as one 64-bit load).
    std::vector<std::int32_t> pairs;
    int vector_end;
};

RowTable row_table(int source_width, int width) {
    const std::vector<Tap> taps = linear_taps(source_width, width);
    RowTable t{std::vector<int>(taps.size()), std::vector<std::int32_t>(taps.size()),
               std::vector<std::int32_t>(taps.size()), width, std::vector<std::int32_t>(taps.size() * 4), 0};
    for (size_t x = 0; x < taps.size(); ++x) {
        const bool edge = taps[x].source + 1 >= source_width;
        if (edge && t.interior == width) t.interior = static_cast<int>(x);
        t.first[x] = 3 * taps[x].source;
        t.w0[x] = edge ? kWeightOne : taps[x].w0;
        t.w1[x] = edge ? 0 : taps[x].w1;
        const std::int32_t pair = static_cast<std::int32_t>(static_cast<std::uint32_t>(t.w0[x]) |
                                                            static_cast<std::uint32_t>(t.w1[x]) << 16);
        for (int c = 0; c < 3; ++c) t.pairs[4 * x + static_cast<size_t>(c)] = pair;
        t.pairs[4 * x + 3] = 0;
    }
    while (t.vector_end < t.interior && t.first[static_cast<size_t>(t.vector_end)] + 8 <= 3 * source_width)
        ++t.vector_end;
    return t;
}

// -- the instruction set, chosen once at run time (the wheel runs on any x86-64) -------------------

enum class Isa { scalar, sse2, sse41, avx2, neon };

Isa detect_isa() {
#if defined(YOLOX_DEPLOY_X86)
    __builtin_cpu_init();
    const Isa best = __builtin_cpu_supports("avx2")     ? Isa::avx2
                     : __builtin_cpu_supports("sse4.1") ? Isa::sse41
                                                        : Isa::sse2;
    if (const char* forced = std::getenv("YOLOX_DEPLOY_LETTERBOX_ISA")) {  // tests compare the paths
        const std::string name = forced;
        if (name == "scalar") return Isa::scalar;
        if (name == "sse2") return Isa::sse2;
        if (name == "sse4.1" && best != Isa::sse2) return Isa::sse41;
    }
    return best;  // AVX2 only where the CPU has it
#elif defined(YOLOX_DEPLOY_NEON)
    if (const char* forced = std::getenv("YOLOX_DEPLOY_LETTERBOX_ISA"))
        if (std::string(forced) == "scalar") return Isa::scalar;
    return Isa::neon;
#else
    return Isa::scalar;
#endif
}

Isa isa() {
    static const Isa chosen = detect_isa();
    return chosen;
}

#if defined(YOLOX_DEPLOY_X86)
// The horizontal pass of interleaved rows with AVX2, for pixels [0, vector_end) in steps of 4:
// each pixel's 8 source bytes (B0 G0 R0 B1 G1 R1 . .) widened to int16, reordered into the pairs
// (B0 B1) (G0 G1) (R0 R1), and multiplied-and-added with (w0 w1): the scalar path's int32 sums,
// exactly, then >> 4. Writes 4 values per pixel (the 4th is overwritten by the next pixel; `out`
// has room for one more). Returns the first pixel not done.
// pixels x and x + 1 -> int32 [B G R 0 | B G R 0]
__attribute__((target("avx2"))) inline __m256i two_pixels_avx2(const std::uint8_t* row, const int* first,
                                                               const std::int32_t* pairs, int x) {
    const __m256i order = _mm256_setr_epi8(0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1,  //
                                           0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1);
    const __m128i bytes = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + first[x])),
                                             _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + first[x + 1])));
    const __m256i wide = _mm256_shuffle_epi8(_mm256_cvtepu8_epi16(bytes), order);
    const __m256i weights = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pairs + 4 * x));
    return _mm256_srai_epi32(_mm256_madd_epi16(wide, weights), 4);
}

__attribute__((target("avx2"))) int resize_row_avx2(const std::uint8_t* row, const RowTable& t, std::int16_t* out) {
    const int* first = t.first.data();
    const std::int32_t* pairs = t.pairs.data();
    int x = 0;
    for (; x + 4 <= t.vector_end; x += 4) {
        // lane 0: pixels x, x + 2; lane 1: pixels x + 1, x + 3 (packs works per lane)
        const __m256i packed = _mm256_packs_epi32(two_pixels_avx2(row, first, pairs, x),
                                                  two_pixels_avx2(row, first, pairs, x + 2));
        const __m128i low = _mm256_castsi256_si128(packed), high = _mm256_extracti128_si256(packed, 1);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * x), low);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * (x + 1)), high);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * (x + 2)), _mm_unpackhi_epi64(low, low));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * (x + 3)), _mm_unpackhi_epi64(high, high));
    }
    return x;
}

// The same with SSE4.1 (CPUs before AVX2): one pixel per 128-bit multiply-add, two per store pair.
__attribute__((target("sse4.1"))) inline __m128i one_pixel_sse41(const std::uint8_t* row, const int* first,
                                                                 const std::int32_t* pairs, int x) {
    const __m128i order = _mm_setr_epi8(0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1);
    const __m128i wide = _mm_shuffle_epi8(
        _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + first[x]))), order);
    const __m128i weights = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pairs + 4 * x));
    return _mm_srai_epi32(_mm_madd_epi16(wide, weights), 4);
}

__attribute__((target("sse4.1"))) int resize_row_sse41(const std::uint8_t* row, const RowTable& t,
                                                       std::int16_t* out) {
    const int* first = t.first.data();
    const std::int32_t* pairs = t.pairs.data();
    int x = 0;
    for (; x + 2 <= t.vector_end; x += 2) {
        const __m128i packed = _mm_packs_epi32(one_pixel_sse41(row, first, pairs, x),
                                               one_pixel_sse41(row, first, pairs, x + 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * x), packed);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 3 * (x + 1)), _mm_unpackhi_epi64(packed, packed));
    }
    return x;
}
#endif

// Stored as OpenCV's SIMD vertical pass reads it: the int32 sum >> 4, which fits in int16
// (255 * 2048 >> 4 = 32640). Planar: channel c of pixel x at out[c * width + x] (so that the
// vertical pass and the float conversion run on contiguous values); else interleaved.
template <bool Planar>
void resize_row(const std::uint8_t* row, const RowTable& t, std::int16_t* out) {
    const int* first = t.first.data();
    const std::int32_t* w0 = t.w0.data();
    const std::int32_t* w1 = t.w1.data();
    const int width = static_cast<int>(t.first.size());
    // planar: three output pointers advancing by 1; interleaved: one, advancing by 3
    std::int16_t* o0 = out;
    std::int16_t* o1 = Planar ? out + width : out + 1;
    std::int16_t* o2 = Planar ? out + 2 * width : out + 2;
    constexpr int step = Planar ? 1 : 3;
    int x = 0;
#if defined(YOLOX_DEPLOY_X86)
    if (!Planar && (isa() == Isa::avx2 || isa() == Isa::sse41)) {
        x = isa() == Isa::avx2 ? resize_row_avx2(row, t, out) : resize_row_sse41(row, t, out);
        o0 += 3 * x, o1 += 3 * x, o2 += 3 * x;
    }
#endif
    for (; x < t.interior; ++x, o0 += step, o1 += step, o2 += step) {
        const std::uint8_t* p = row + first[x];
        const std::int32_t a = w0[x], b = w1[x];
        *o0 = static_cast<std::int16_t>((p[0] * a + p[3] * b) >> 4);
        *o1 = static_cast<std::int16_t>((p[1] * a + p[4] * b) >> 4);
        *o2 = static_cast<std::int16_t>((p[2] * a + p[5] * b) >> 4);
    }
    for (; x < width; ++x, o0 += step, o1 += step, o2 += step) {
        const std::uint8_t* p = row + first[x];
        *o0 = static_cast<std::int16_t>((p[0] * kWeightOne) >> 4);
        *o1 = static_cast<std::int16_t>((p[1] * kWeightOne) >> 4);
        *o2 = static_cast<std::int16_t>((p[2] * kWeightOne) >> 4);
    }
}

// Vertical pass, as OpenCV's VResizeLinearVec_32s8u: 16-bit products keeping the high half,
// summed, then (+ 2) >> 2 saturated to 0..255; stored as T (uint8, or float for the tensor).
// The vector versions compute the same per value: mulhi is (s * w) >> 16, packus the saturation.
#if defined(YOLOX_DEPLOY_X86)
__attribute__((target("avx2"))) inline __m256i blend16_avx2(const std::int16_t* s0, const std::int16_t* s1, __m256i b0,
                                                            __m256i b1) {
    const __m256i a = _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0)), b0);
    const __m256i b = _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s1)), b1);
    return _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(a, b), _mm256_set1_epi16(2)), 2);
}

__attribute__((target("avx2"))) size_t blend_u8_avx2(const std::int16_t* s0, const std::int16_t* s1, int w0, int w1,
                                                     size_t count, std::uint8_t* out) {
    const __m256i b0 = _mm256_set1_epi16(static_cast<short>(w0)), b1 = _mm256_set1_epi16(static_cast<short>(w1));
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const __m256i low = blend16_avx2(s0 + i, s1 + i, b0, b1), high = blend16_avx2(s0 + i + 16, s1 + i + 16, b0, b1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                            _mm256_permute4x64_epi64(_mm256_packus_epi16(low, high), 0xd8));
    }
    return i;
}

size_t blend_u8_sse2(const std::int16_t* s0, const std::int16_t* s1, int w0, int w1, size_t count, std::uint8_t* out) {
    const __m128i b0 = _mm_set1_epi16(static_cast<short>(w0)), b1 = _mm_set1_epi16(static_cast<short>(w1));
    const __m128i two = _mm_set1_epi16(2);
    auto blend8 = [&](size_t i) {
        const __m128i a = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s0 + i)), b0);
        const __m128i b = _mm_mulhi_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s1 + i)), b1);
        return _mm_srai_epi16(_mm_add_epi16(_mm_add_epi16(a, b), two), 2);
    };
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(blend8(i), blend8(i + 8)));
    return i;
}
#elif defined(YOLOX_DEPLOY_NEON)
size_t blend_u8_neon(const std::int16_t* s0, const std::int16_t* s1, int w0, int w1, size_t count, std::uint8_t* out) {
    const int16x4_t b0 = vdup_n_s16(static_cast<std::int16_t>(w0)), b1 = vdup_n_s16(static_cast<std::int16_t>(w1));
    auto high = [](int16x8_t v, int16x4_t w) {  // (v * w) >> 16 per value, as mulhi
        return vcombine_s16(vshrn_n_s32(vmull_s16(vget_low_s16(v), w), 16), vshrn_n_s32(vmull_s16(vget_high_s16(v), w), 16));
    };
    auto blend8 = [&](size_t i) {
        const int16x8_t sum = vaddq_s16(high(vld1q_s16(s0 + i), b0), high(vld1q_s16(s1 + i), b1));
        return vqmovun_s16(vshrq_n_s16(vaddq_s16(sum, vdupq_n_s16(2)), 2));
    };
    size_t i = 0;
    for (; i + 16 <= count; i += 16) vst1q_u8(out + i, vcombine_u8(blend8(i), blend8(i + 8)));
    return i;
}
#endif

// The vector part of a uint8 vertical pass on this CPU; returns the first value not done.
size_t blend_u8_vector(const std::int16_t* s0, const std::int16_t* s1, int w0, int w1, size_t count,
                       std::uint8_t* out) {
    switch (isa()) {
#if defined(YOLOX_DEPLOY_X86)
        case Isa::avx2: {
            const size_t done = blend_u8_avx2(s0, s1, w0, w1, count, out);
            return done + blend_u8_sse2(s0 + done, s1 + done, w0, w1, count - done, out + done);
        }
        case Isa::sse41:
        case Isa::sse2: return blend_u8_sse2(s0, s1, w0, w1, count, out);
#elif defined(YOLOX_DEPLOY_NEON)
        case Isa::neon: return blend_u8_neon(s0, s1, w0, w1, count, out);
#endif
        default: return 0;
    }
}

template <typename T>
void blend_rows(const std::int16_t* __restrict s0, const std::int16_t* __restrict s1, int w0, int w1, size_t count,
                T* __restrict out) {
    const std::int32_t b0 = w0, b1 = w1;
    size_t start = 0;
    if constexpr (std::is_same_v<T, std::uint8_t>) start = blend_u8_vector(s0, s1, w0, w1, count, out);
    for (size_t i = start; i < count; ++i) {
        const std::int16_t a = static_cast<std::int16_t>((s0[i] * b0) >> 16);
        const std::int16_t b = static_cast<std::int16_t>((s1[i] * b1) >> 16);
        const int v = (static_cast<std::int16_t>(a + b) + 2) >> 2;
        out[i] = static_cast<T>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
}

#if defined(YOLOX_DEPLOY_X86)
// 8 interleaved BGR pixels (24 bytes) -> their B, G and R bytes (the low 8 of each), by byte shuffles.
struct Planes8 {
    __m128i b, g, r;
};

__attribute__((target("ssse3"))) inline Planes8 deinterleave8(const std::uint8_t* pixels) {
    const __m128i low_b = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i high_b = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i low_g = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i high_g = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i low_r = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i high_r = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pixels));
    const __m128i high = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(pixels + 16));
    return Planes8{_mm_or_si128(_mm_shuffle_epi8(low, low_b), _mm_shuffle_epi8(high, high_b)),
                   _mm_or_si128(_mm_shuffle_epi8(low, low_g), _mm_shuffle_epi8(high, high_g)),
                   _mm_or_si128(_mm_shuffle_epi8(low, low_r), _mm_shuffle_epi8(high, high_r))};
}

// 8 pixels at a time, widened to float.
__attribute__((target("avx2"))) size_t split_planes_avx2(const std::uint8_t* line, size_t width, float* b, float* g,
                                                         float* r) {
    size_t x = 0;
    for (; x + 8 <= width; x += 8) {
        const Planes8 v = deinterleave8(line + 3 * x);
        _mm256_storeu_ps(b + x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v.b)));
        _mm256_storeu_ps(g + x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v.g)));
        _mm256_storeu_ps(r + x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v.r)));
    }
    return x;
}
#endif

#if defined(YOLOX_DEPLOY_X86)
__attribute__((target("sse4.1"))) inline void store_floats_sse41(__m128i bytes, float* out) {
    _mm_storeu_ps(out, _mm_cvtepi32_ps(_mm_cvtepu8_epi32(bytes)));
    _mm_storeu_ps(out + 4, _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_srli_si128(bytes, 4))));
}

__attribute__((target("sse4.1"))) size_t split_planes_sse41(const std::uint8_t* line, size_t width, float* b,
                                                            float* g, float* r) {
    size_t x = 0;
    for (; x + 8 <= width; x += 8) {
        const Planes8 v = deinterleave8(line + 3 * x);
        store_floats_sse41(v.b, b + x);
        store_floats_sse41(v.g, g + x);
        store_floats_sse41(v.r, r + x);
    }
    return x;
}
#endif

// Interleaved BGR bytes -> three float planes.
void split_planes(const std::uint8_t* __restrict line, size_t width, float* __restrict b, float* __restrict g,
                  float* __restrict r) {
    size_t start = 0;
#if defined(YOLOX_DEPLOY_X86)
    if (isa() == Isa::avx2) start = split_planes_avx2(line, width, b, g, r);
    else if (isa() == Isa::sse41) start = split_planes_sse41(line, width, b, g, r);
#endif
    for (size_t x = start; x < width; ++x) {
        b[x] = line[3 * x];
        g[x] = line[3 * x + 1];
        r[x] = line[3 * x + 2];
    }
}

// Resamples `image` to height x width. For each output row y, `blend(y, s0, s1, w0, w1)` gets the
// two horizontally resized source rows (planar or interleaved, width * 3 values) and their weights.
template <bool Planar, typename Blend>
void resize_bilinear(const ImageView& image, int height, int width, int first_row, int last_row, Blend&& blend) {
    const RowTable table = row_table(image.width, width);
    const std::vector<Tap> y_taps = linear_taps(image.height, height);
    const size_t values = static_cast<size_t>(width) * 3;
    // The two horizontally resized source rows in use, kept while consecutive output rows share them.
    // (+4: the vector horizontal pass writes one value past a pixel, overwritten by the next)
    std::vector<std::int16_t> cached[2] = {std::vector<std::int16_t>(values + 4), std::vector<std::int16_t>(values + 4)};
    int cached_row[2] = {-1, -1};
    auto horizontal = [&](int source_row, int keep) -> const std::int16_t* {
        for (int k = 0; k < 2; ++k)
            if (cached_row[k] == source_row) return cached[k].data();
        const int slot = cached_row[0] == keep ? 1 : 0;  // never evict the other row of this output row
        resize_row<Planar>(image.data + static_cast<std::ptrdiff_t>(source_row) * image.row_stride, table,
                           cached[slot].data());
        cached_row[slot] = source_row;
        return cached[slot].data();
    };
    for (int y = first_row; y < last_row; ++y) {
        const Tap& t = y_taps[static_cast<size_t>(y)];
        const int next = std::min(t.source + 1, image.height - 1);
        const std::int16_t* s0 = horizontal(t.source, next);
        const std::int16_t* s1 = horizontal(next, t.source);
        blend(y, s0, s1, t.w0, t.w1);
    }
}

void check_image(const ImageView& image) {
    if (image.data == nullptr || image.height <= 0 || image.width <= 0)
        throw std::invalid_argument("image is empty (" + std::to_string(image.height) + "x" +
                                    std::to_string(image.width) + " pixels)");
    if (image.row_stride < static_cast<std::ptrdiff_t>(image.width) * 3)
        throw std::invalid_argument("image row stride is smaller than width x 3 bytes");
}

}  // namespace

const char* letterbox_instruction_set() {
    switch (isa()) {
        case Isa::avx2: return "avx2";
        case Isa::sse2: return "sse2";
        case Isa::sse41: return "sse4.1";
        case Isa::neon: return "neon";
        default: return "scalar";
    }
}

LetterboxSize letterbox_size(int image_height, int image_width, int input_height, int input_width) {
    if (image_height <= 0 || image_width <= 0)
        throw std::invalid_argument("image is empty (" + std::to_string(image_height) + "x" +
                                    std::to_string(image_width) + " pixels)");
    if (input_height <= 0 || input_width <= 0)
        throw std::invalid_argument("input size must be positive, got " + std::to_string(input_height) + "x" +
                                    std::to_string(input_width));
    const double r = std::min(static_cast<double>(input_height) / image_height,
                              static_cast<double>(input_width) / image_width);
    // Python's int(): truncation toward zero of the double product
    const int w = std::max(1, static_cast<int>(image_width * r));
    const int h = std::max(1, static_cast<int>(image_height * r));
    return LetterboxSize{r, std::min(h, input_height), std::min(w, input_width)};
}

namespace {

constexpr int kRowsPerThread = 96;  // a band smaller than this costs more to hand to a thread than it saves
constexpr int kMaxWorkers = 15;      // band workers kept at most (a 16-thread letterbox)

// Worker threads for the bands after the first, started on first use and kept, idle on a
// condition variable between calls: a thread started per call cost about as much as the band it
// ran. Several callers may use it at once; a caller runs queued bands itself while it waits, so it
// never waits on a busy or missing worker. After fork() the child gets a new, empty set (its
// parent's threads do not exist there); the old one is left, never destroyed, as at exit.
class BandWorkers {
   public:
    static BandWorkers& instance() {
        static const bool registered = [] {
            pthread_atfork(nullptr, nullptr, [] { current() = new BandWorkers(); });
            return true;
        }();
        (void)registered;
        return *current();
    }

    // Runs band(0) .. band(count - 1), band 0 on this thread; returns when all are done. Exceptions
    // are caught per band and rethrown here (the first).
    void run(int count, const std::function<void(int)>& band) {
        Batch batch;
        batch.remaining = count - 1;
        batch.errors.resize(static_cast<size_t>(count));
        {
            std::lock_guard<std::mutex> lock(mutex_);
            start_workers(count - 1);
            for (int i = 1; i < count; ++i) jobs_.push_back(Job{&band, i, &batch});
        }
        work_.notify_all();
        run_one(Job{&band, 0, &batch}, false);
        std::unique_lock<std::mutex> lock(mutex_);
        while (batch.remaining > 0) {
            if (!jobs_.empty()) {  // help: run a queued band (ours or another caller's)
                const Job job = jobs_.front();
                jobs_.pop_front();
                lock.unlock();
                run_one(job, true);
                lock.lock();
            } else {
                batch.done.wait(lock);
            }
        }
        lock.unlock();
        for (const auto& error : batch.errors)
            if (error) std::rethrow_exception(error);
    }

   private:
    struct Batch {
        int remaining = 0;  // guarded by mutex_
        std::condition_variable done;
        std::vector<std::exception_ptr> errors;
    };
    struct Job {
        const std::function<void(int)>* band;
        int index;
        Batch* batch;
    };

    static BandWorkers*& current() {
        static BandWorkers* workers = new BandWorkers();  // never destroyed: threads may wait in it at exit
        return workers;
    }

    void run_one(const Job& job, bool counted) {
        try {
            (*job.band)(job.index);
        } catch (...) {
            job.batch->errors[static_cast<size_t>(job.index)] = std::current_exception();
        }
        if (!counted) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (--job.batch->remaining == 0) job.batch->done.notify_all();
    }

    void start_workers(int wanted) {  // under mutex_; a thread that cannot be started is done without
        wanted = std::min(wanted, kMaxWorkers);
        try {
            while (static_cast<int>(threads_.size()) < wanted) {
                threads_.emplace_back([this] { work(); });
                threads_.back().detach();
            }
        } catch (...) {
        }
    }

    void work() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            work_.wait(lock, [this] { return !jobs_.empty(); });
            const Job job = jobs_.front();
            jobs_.pop_front();
            lock.unlock();
            run_one(job, true);
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_;
    std::deque<Job> jobs_;
    std::vector<std::thread> threads_;  // detached; kept to count them
};

// Runs rows(first, last) over [0, height) in up to `threads` bands (the calling thread takes the
// first, kept workers the others); rows are independent, so the bytes are those of one thread.
template <typename Rows>
void in_bands(int height, int threads, Rows&& rows) {
    threads = std::max(1, std::min(threads, height / kRowsPerThread));
    if (threads == 1) {
        rows(0, height);
        return;
    }
    const int band = (height + threads - 1) / threads;
    const std::function<void(int)> run_band = [&](int t) { rows(t * band, std::min(height, (t + 1) * band)); };
    BandWorkers::instance().run(threads, run_band);
}

void check_rows(int first_row, int last_row, int input_height) {
    if (first_row < 0 || last_row > input_height || first_row > last_row)
        throw std::invalid_argument("letterbox rows [" + std::to_string(first_row) + ", " + std::to_string(last_row) +
                                    ") are not within the input height " + std::to_string(input_height));
}

}  // namespace

LetterboxSize letterbox_to_chw(const ImageView& image, int input_height, int input_width, float* out, int threads) {
    check_image(image);
    in_bands(input_height, threads, [&](int first, int last) {
        letterbox_rows_to_chw(image, input_height, input_width, out, first, last);
    });
    return letterbox_size(image.height, image.width, input_height, input_width);
}

LetterboxSize letterbox_to_hwc(const ImageView& image, int input_height, int input_width, std::uint8_t* out,
                               int threads) {
    check_image(image);
    in_bands(input_height, threads, [&](int first, int last) {
        letterbox_rows_to_hwc(image, input_height, input_width, out, first, last);
    });
    return letterbox_size(image.height, image.width, input_height, input_width);
}

LetterboxSize letterbox_rows_to_chw(const ImageView& image, int input_height, int input_width, float* out,
                                    int first_row, int last_row) {
    check_image(image);
    const LetterboxSize size = letterbox_size(image.height, image.width, input_height, input_width);
    check_rows(first_row, last_row, input_height);
    const size_t plane = static_cast<size_t>(input_height) * input_width;
    const size_t w = static_cast<size_t>(size.resized_width);
    auto row_of = [&](int c, int y) { return out + c * plane + static_cast<size_t>(y) * input_width; };
    const int image_rows_end = std::min(last_row, size.resized_height);
    if (size.resized_height == image.height && size.resized_width == image.width) {
        // same size: the resize returns its input exactly (weights 2048 and 0 everywhere)
        for (int y = first_row; y < image_rows_end; ++y) {
            split_planes(image.data + static_cast<std::ptrdiff_t>(y) * image.row_stride, w, row_of(0, y),
                         row_of(1, y), row_of(2, y));
        }
    } else if (first_row < image_rows_end) {
        // interleaved rows (the vector passes' layout), each blended into bytes and then split into the
        // planes: the same value per element as planar rows would give
        std::vector<std::uint8_t> line(3 * w);
        resize_bilinear<false>(image, size.resized_height, size.resized_width, first_row, image_rows_end,
                               [&](int y, const std::int16_t* s0, const std::int16_t* s1, int w0, int w1) {
                                   blend_rows(s0, s1, w0, w1, 3 * w, line.data());
                                   split_planes(line.data(), w, row_of(0, y), row_of(1, y), row_of(2, y));
                               });
    }
    for (int c = 0; c < 3; ++c)
        for (int y = first_row; y < last_row; ++y)
            std::fill(row_of(c, y) + (y < size.resized_height ? w : 0), row_of(c, y) + input_width,
                      static_cast<float>(kPadValue));
    return size;
}

LetterboxSize letterbox_rows_to_hwc(const ImageView& image, int input_height, int input_width, std::uint8_t* out,
                                    int first_row, int last_row) {
    check_image(image);
    const LetterboxSize size = letterbox_size(image.height, image.width, input_height, input_width);
    check_rows(first_row, last_row, input_height);
    const size_t row_bytes = static_cast<size_t>(input_width) * 3;
    const size_t resized_bytes = static_cast<size_t>(size.resized_width) * 3;
    const int image_rows_end = std::min(last_row, size.resized_height);
    if (size.resized_height == image.height && size.resized_width == image.width) {
        for (int y = first_row; y < image_rows_end; ++y)  // same size: the resize returns its input exactly
            std::copy_n(image.data + static_cast<std::ptrdiff_t>(y) * image.row_stride, resized_bytes,
                        out + static_cast<size_t>(y) * row_bytes);
    } else if (first_row < image_rows_end) {
        resize_bilinear<false>(image, size.resized_height, size.resized_width, first_row, image_rows_end,
                               [&](int y, const std::int16_t* s0, const std::int16_t* s1, int w0, int w1) {
                                   blend_rows(s0, s1, w0, w1, resized_bytes, out + static_cast<size_t>(y) * row_bytes);
                               });
    }
    for (int y = first_row; y < last_row; ++y)
        std::fill(out + static_cast<size_t>(y) * row_bytes + (y < size.resized_height ? resized_bytes : 0),
                  out + (static_cast<size_t>(y) + 1) * row_bytes, kPadValue);
    return size;
}

}  // namespace yolox_deploy::core
