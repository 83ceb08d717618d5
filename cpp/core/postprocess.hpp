// The YOLOX postprocess every backend shares: score filter -> grid decode -> greedy NMS -> map
// back to the original image; and the host side of end-to-end models (scaling, clipping).
//
// Mirrors yolox_deploy/processing/postprocess.py (the NumPy reference) operation by operation, so
// results are identical: float32 arithmetic in the same order, exp in double rounded to float, a
// stable score-descending order (ties by anchor index), IoU without the +1, suppression when
// IoU > threshold. Build with -ffp-contract=off so that no FMA changes the rounding.
// Errors are std::invalid_argument with a one-line message.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace yolox_deploy::core {

struct Box {
    float x1, y1, x2, y2;  // xyxy
};

struct Detection {
    Box box;
    float score;
    std::int64_t class_id;
};

// Raw head output of one image [N, 5 + C], any strides: element (anchor, column) at
// base + anchor * anchor_stride + column * column_stride bytes.
struct RawView {
    const char* base;
    std::int64_t anchor_stride, column_stride;
    std::int64_t columns;
    float at(std::int64_t anchor, std::int64_t column) const {
        return *reinterpret_cast<const float*>(base + anchor * anchor_stride + column * column_stride);
    }
    // The row as a contiguous float array: in place when columns are adjacent, else gathered.
    const float* row(std::int64_t anchor, std::vector<float>& scratch) const;
};

struct PostprocessSettings {
    std::int64_t input_height, input_width;
    std::vector<std::int64_t> strides;
    float conf, iou;
    bool class_agnostic;
    std::int64_t max_det;  // < 0: unlimited
};

using ImageHW = std::pair<std::int64_t, std::int64_t>;  // (height, width) in pixels

// Checked settings for a raw output of `anchors` rows of `columns` values; throws on bad values.
PostprocessSettings make_settings(std::int64_t anchors, std::int64_t columns, std::int64_t input_height,
                                  std::int64_t input_width, const std::vector<std::int64_t>& strides, double conf,
                                  double iou, bool class_agnostic, std::int64_t max_det);

// Throws unless ratio is finite and > 0 (and clip, when given, positive).
void check_mapping(double ratio, const ImageHW* clip);

// One image's raw output -> detections in original-image pixels (divided by `ratio`, clipped to
// `clip` when not null), sorted by score descending.
std::vector<Detection> postprocess_image(const RawView& raw, const PostprocessSettings& settings, float ratio,
                                         const ImageHW* clip);

// One image of an end-to-end model: `count` detections in letterboxed-input pixels -> those with
// score >= conf (at most max_det, < 0 unlimited) in original-image pixels.
std::vector<Detection> end_to_end_image(const float* boxes_xyxy, const float* scores, const std::int32_t* class_ids,
                                        std::int64_t count, float conf, std::int64_t max_det, float ratio,
                                        const ImageHW* clip);

}  // namespace yolox_deploy::core
