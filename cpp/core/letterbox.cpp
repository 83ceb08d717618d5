#include "letterbox.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
};

RowTable row_table(int source_width, int width) {
    const std::vector<Tap> taps = linear_taps(source_width, width);
    RowTable t{std::vector<int>(taps.size()), std::vector<std::int32_t>(taps.size()),
               std::vector<std::int32_t>(taps.size()), width};
    for (size_t x = 0; x < taps.size(); ++x) {
        const bool edge = taps[x].source + 1 >= source_width;
        if (edge && t.interior == width) t.interior = static_cast<int>(x);
        t.first[x] = 3 * taps[x].source;
        t.w0[x] = edge ? kWeightOne : taps[x].w0;
        t.w1[x] = edge ? 0 : taps[x].w1;
    }
    return t;
}

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
template <typename T>
void blend_rows(const std::int16_t* __restrict s0, const std::int16_t* __restrict s1, int w0, int w1, size_t count,
                T* __restrict out) {
    const std::int32_t b0 = w0, b1 = w1;
    for (size_t i = 0; i < count; ++i) {
        const std::int16_t a = static_cast<std::int16_t>((s0[i] * b0) >> 16);
        const std::int16_t b = static_cast<std::int16_t>((s1[i] * b1) >> 16);
        const int v = (static_cast<std::int16_t>(a + b) + 2) >> 2;
        out[i] = static_cast<T>(v < 0 ? 0 : (v > 255 ? 255 : v));
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
    std::vector<std::int16_t> cached[2] = {std::vector<std::int16_t>(values), std::vector<std::int16_t>(values)};
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

// Runs rows(first, last) over [0, height) in up to `threads` bands, one per thread (the calling
// thread takes the first); rows are independent, so the bytes are those of one thread.
template <typename Rows>
void in_bands(int height, int threads, Rows&& rows) {
    threads = std::max(1, std::min(threads, height / kRowsPerThread));
    if (threads == 1) {
        rows(0, height);
        return;
    }
    const int band = (height + threads - 1) / threads;
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    auto run_band = [&](int t) {
        try {
            rows(t * band, std::min(height, (t + 1) * band));
        } catch (...) {
            errors[static_cast<size_t>(t)] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    int launched = 1;  // bands [1, launched) run on workers; band 0 and any a worker could not take, here
    try {
        workers.reserve(static_cast<size_t>(threads - 1));
        for (; launched < threads; ++launched) workers.emplace_back(run_band, launched);
    } catch (...) {  // no thread to be had (std::system_error) or no memory: the rest run on this thread
    }
    run_band(0);
    for (int t = launched; t < threads; ++t) run_band(t);
    for (auto& worker : workers) worker.join();
    for (const auto& error : errors)
        if (error) std::rethrow_exception(error);
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
            const std::uint8_t* src = image.data + static_cast<std::ptrdiff_t>(y) * image.row_stride;
            float* b = row_of(0, y);
            float* g = row_of(1, y);
            float* r = row_of(2, y);
            for (size_t x = 0; x < w; ++x) b[x] = src[3 * x], g[x] = src[3 * x + 1], r[x] = src[3 * x + 2];
        }
    } else if (first_row < image_rows_end) {
        resize_bilinear<true>(image, size.resized_height, size.resized_width, first_row, image_rows_end,
                              [&](int y, const std::int16_t* s0, const std::int16_t* s1, int w0, int w1) {
                                  for (int c = 0; c < 3; ++c)
                                      blend_rows(s0 + c * w, s1 + c * w, w0, w1, w, row_of(c, y));
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
