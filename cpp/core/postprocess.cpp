#include "postprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace yolox_deploy::core {

const float* RawView::row(std::int64_t anchor, std::vector<float>& scratch) const {
    if (column_stride == static_cast<std::int64_t>(sizeof(float)))
        return reinterpret_cast<const float*>(base + anchor * anchor_stride);
    for (std::int64_t j = 0; j < columns; ++j) scratch[static_cast<size_t>(j)] = at(anchor, j);
    return scratch.data();
}

namespace {

using Candidate = Detection;

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

inline bool all_finite(const float* values, std::int64_t n) {
    // Exponent bits all ones <=> inf or NaN; OR-reduced without branches.
    std::uint32_t bad = 0;
    for (std::int64_t k = 0; k < n; ++k) {
        std::uint32_t bits;
        std::memcpy(&bits, values + k, sizeof(bits));
        bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

// Largest class score and its first index (NumPy argmax's tie rule). Every column of a row
// whose objectness passed is read, so non-finite values there are refused.
Candidate best_class(const float* row, std::int64_t num_classes, float objectness) {
    if (!all_finite(row, 5 + num_classes))
        fail("model output has NaN/inf box or class values; the model or its conversion is broken");
    const float* cls = row + 5;
    constexpr int kLanes = 8;  // independent running maxima keep the loop free of a dependency chain
    float lanes[kLanes];
    for (int j = 0; j < kLanes; ++j) lanes[j] = cls[0];
    std::int64_t k = 0;
    for (; k + kLanes <= num_classes; k += kLanes)
        for (int j = 0; j < kLanes; ++j) lanes[j] = cls[k + j] > lanes[j] ? cls[k + j] : lanes[j];
    float best = lanes[0];
    for (int j = 1; j < kLanes; ++j) best = lanes[j] > best ? lanes[j] : best;
    for (; k < num_classes; ++k) best = cls[k] > best ? cls[k] : best;
    std::int64_t best_k = 0;
    while (!(cls[best_k] == best)) ++best_k;
    return Candidate{Box{0, 0, 0, 0}, objectness * cls[best_k], best_k};
}

Box decode(const float* row, float grid_x, float grid_y, float stride) {
    const float cx = (row[0] + grid_x) * stride;
    const float cy = (row[1] + grid_y) * stride;
    const float w = static_cast<float>(std::exp(static_cast<double>(row[2]))) * stride;
    const float h = static_cast<float>(std::exp(static_cast<double>(row[3]))) * stride;
    const float half_w = w / 2.0f, half_h = h / 2.0f;
    const Box box{cx - half_w, cy - half_h, cx + half_w, cy + half_h};
    if (!(std::isfinite(box.x1) && std::isfinite(box.y1) && std::isfinite(box.x2) && std::isfinite(box.y2)))
        fail("decoded boxes overflow (box offsets far outside any real model's range)");
    return box;
}

std::vector<Candidate> select_candidates(const RawView& raw, const PostprocessSettings& s) {
    std::vector<Candidate> out;
    std::vector<float> scratch(static_cast<size_t>(raw.columns));
    std::int64_t anchor = 0;
    for (const std::int64_t stride : s.strides) {
        const std::int64_t gh = s.input_height / stride, gw = s.input_width / stride;
        const float stride_f = static_cast<float>(stride);
        for (std::int64_t y = 0; y < gh; ++y) {
            for (std::int64_t x = 0; x < gw; ++x, ++anchor) {
                const float objectness = raw.at(anchor, 4);
                if (!std::isfinite(objectness)) fail("model output has NaN/inf objectness; the model or its conversion is broken");
                if (!(objectness >= s.conf)) continue;
                const float* row = raw.row(anchor, scratch);
                Candidate c = best_class(row, raw.columns - 5, objectness);
                if (!(c.score >= s.conf)) continue;
                c.box = decode(row, static_cast<float>(x), static_cast<float>(y), stride_f);
                out.push_back(c);
            }
        }
    }
    return out;
}

inline float area(const Box& b) { return (b.x2 - b.x1) * (b.y2 - b.y1); }

// Same operation order as nms.greedy_nms: (area_kept + area_other) - inter.
inline bool overlaps(const Box& kept, float kept_area, const Box& other, float other_area, float threshold) {
    const float w = std::max(0.0f, std::min(kept.x2, other.x2) - std::max(kept.x1, other.x1));
    const float h = std::max(0.0f, std::min(kept.y2, other.y2) - std::max(kept.y1, other.y1));
    const float inter = w * h;
    const float iou = inter / (kept_area + other_area - inter);
    return iou > threshold;  // NaN (zero-area pairs) suppresses nothing
}

// Greedy NMS in (score desc, anchor asc) order; a candidate survives unless a kept box of
// its class (any class if agnostic) overlaps it, which equals per-class NMS merged by score.
// Kept boxes are indexed per class so a candidate is compared with its own class only.
std::vector<Candidate> nms(std::vector<Candidate> cands, std::int64_t num_classes, const PostprocessSettings& s) {
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    struct Kept {
        Box box;
        float area;
    };
    std::vector<std::vector<Kept>> kept_by_class(s.class_agnostic ? 1 : static_cast<size_t>(num_classes));
    std::vector<Candidate> kept;
    for (const Candidate& c : cands) {
        if (s.max_det >= 0 && static_cast<std::int64_t>(kept.size()) >= s.max_det) break;
        std::vector<Kept>& same = kept_by_class[s.class_agnostic ? 0 : static_cast<size_t>(c.class_id)];
        const float c_area = area(c.box);
        bool suppressed = false;
        for (size_t k = 0; k < same.size() && !suppressed; ++k) {
            suppressed = overlaps(same[k].box, same[k].area, c.box, c_area, s.iou);
        }
        if (!suppressed) {
            kept.push_back(c);
            same.push_back(Kept{c.box, c_area});
        }
    }
    return kept;
}

void map_to_image(std::vector<Candidate>& kept, float ratio, const std::pair<std::int64_t, std::int64_t>* image_hw) {
    for (Candidate& c : kept) {
        c.box = Box{c.box.x1 / ratio, c.box.y1 / ratio, c.box.x2 / ratio, c.box.y2 / ratio};
        if (image_hw != nullptr) {
            const float h = static_cast<float>(image_hw->first), w = static_cast<float>(image_hw->second);
            c.box.x1 = std::min(std::max(c.box.x1, 0.0f), w);
            c.box.x2 = std::min(std::max(c.box.x2, 0.0f), w);
            c.box.y1 = std::min(std::max(c.box.y1, 0.0f), h);
            c.box.y2 = std::min(std::max(c.box.y2, 0.0f), h);
        }
    }
}


}  // namespace

PostprocessSettings make_settings(std::int64_t anchors, std::int64_t columns, std::int64_t input_height,
                                  std::int64_t input_width, const std::vector<std::int64_t>& strides, double conf,
                                  double iou, bool class_agnostic, std::int64_t max_det) {
    if (input_height <= 0 || input_width <= 0)
        fail("input size must be positive, got " + std::to_string(input_height) + "x" + std::to_string(input_width));
    if (strides.empty()) fail("strides must not be empty");
    std::int64_t expected = 0;
    for (const std::int64_t s : strides) {
        if (s <= 0 || s > input_height || s > input_width)
            fail("every stride must be in [1, input size], got " + std::to_string(s));
        expected += (input_height / s) * (input_width / s);
    }
    if (columns < 6) fail("model output needs 5 + num_classes >= 6 columns, got " + std::to_string(columns));
    if (anchors != expected)
        fail("model output has " + std::to_string(anchors) + " anchors but the input size and strides give " +
             std::to_string(expected));
    if (!(std::isfinite(conf) && conf >= 0)) fail("conf must be a finite number >= 0");
    if (!(iou >= 0 && iou <= 1)) fail("iou must be in [0, 1]");
    return PostprocessSettings{input_height, input_width, strides, static_cast<float>(conf), static_cast<float>(iou),
                               class_agnostic, max_det};
}

void check_mapping(double ratio, const ImageHW* clip) {
    if (!(std::isfinite(ratio) && ratio > 0)) fail("letterbox ratios must be finite and > 0");
    if (clip != nullptr && (clip->first <= 0 || clip->second <= 0)) fail("image shapes must be positive");
}

std::vector<Detection> postprocess_image(const RawView& raw, const PostprocessSettings& settings, float ratio,
                                         const ImageHW* clip) {
    std::vector<Detection> kept = nms(select_candidates(raw, settings), raw.columns - 5, settings);
    map_to_image(kept, ratio, clip);
    return kept;
}

std::vector<Detection> end_to_end_image(const float* boxes_xyxy, const float* scores, const std::int32_t* class_ids,
                                        std::int64_t count, float conf, std::int64_t max_det, float ratio,
                                        const ImageHW* clip) {
    std::vector<Detection> kept;
    for (std::int64_t i = 0; i < count && (max_det < 0 || static_cast<std::int64_t>(kept.size()) < max_det); ++i) {
        if (!(scores[i] >= conf)) continue;
        const float* b = boxes_xyxy + 4 * i;
        kept.push_back(Detection{Box{b[0], b[1], b[2], b[3]}, scores[i], class_ids[i]});
    }
    map_to_image(kept, ratio, clip);
    return kept;
}

}  // namespace yolox_deploy::core
