// The YOLOX letterbox, owned by this core so that Python and C++ (and x86 and aarch64) produce
// byte-identical network inputs whatever OpenCV build sits beside them.
//
// Geometry of the official YOLOX preproc: r = min(H / h, W / w) in double, resized size
// (int(w * r), int(h * r)) at least 1, pasted at the top-left of an HxW canvas of 114, BGR 0-255.
// Resampling is OpenCV's INTER_LINEAR for 8-bit images, written out: half-pixel centres, edges
// clamped, 11-bit fixed-point weights (round half to even), the horizontal pass exact in int32,
// the vertical pass as OpenCV's SIMD path computes it ((S >> 4) * w >> 16, summed, (+2) >> 2).
// OpenCV's scalar tail (the last < 16 values of a row) rounds once instead, so cv2.resize may
// differ from this by one level on a few values (measured in docs/cpp.md).
// Vectorised with the instruction set chosen at run time (AVX2, SSE4.1 or SSE2 on x86-64, NEON
// on aarch64), each vector path computing the scalar path's integers exactly: the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace yolox_deploy::core {

inline constexpr std::uint8_t kPadValue = 114;

// A BGR uint8 image: pixel (y, x) channel c at data[y * row_stride + x * 3 + c].
struct ImageView {
    const std::uint8_t* data;
    int height;
    int width;
    std::ptrdiff_t row_stride;  // bytes, >= width * 3
};

struct LetterboxSize {
    double ratio;  // network-input pixels per original-image pixel
    int resized_height;
    int resized_width;
};

// The vector instructions the resize runs on this CPU ("avx2", "sse4.1", "sse2", "neon" or "scalar";
// chosen once at run time, YOLOX_DEPLOY_LETTERBOX_ISA=scalar|sse2|sse4.1 forces a lesser one): the
// bytes are the same.
const char* letterbox_instruction_set();

// Throws std::invalid_argument for empty images or non-positive input sizes.
LetterboxSize letterbox_size(int image_height, int image_width, int input_height, int input_width);

// Letterbox into a float32 [3, input_height, input_width] tensor (BGR planes, values 0-255), on up
// to `threads` threads (bands of rows; the same bytes as one thread).
LetterboxSize letterbox_to_chw(const ImageView& image, int input_height, int input_width, float* out,
                               int threads = 1);

// The same, for output rows [first_row, last_row) only (the rest of `out` is not touched): parts
// of one image can be letterboxed on several threads.
LetterboxSize letterbox_rows_to_chw(const ImageView& image, int input_height, int input_width, float* out,
                                    int first_row, int last_row);

// Letterbox into a uint8 [input_height, input_width, 3] canvas (the same values, interleaved).
LetterboxSize letterbox_to_hwc(const ImageView& image, int input_height, int input_width, std::uint8_t* out,
                               int threads = 1);

// The same, for output rows [first_row, last_row) only (the rest of `out` is not touched).
LetterboxSize letterbox_rows_to_hwc(const ImageView& image, int input_height, int input_width, std::uint8_t* out,
                                    int first_row, int last_row);

}  // namespace yolox_deploy::core
