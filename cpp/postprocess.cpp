// Fused YOLOX postprocess: score filter -> grid decode -> greedy NMS -> map back to the image.
//
// Mirrors yolox_deploy/processing/postprocess.py (the NumPy reference) operation by operation, so
// results are identical: float32 arithmetic in the same order, exp in double rounded to
// float, a stable score-descending order (ties by anchor index), IoU without the +1,
// suppression when IoU > threshold. Build with -ffp-contract=off so no FMA changes rounding.
// Dependency-free apart from pybind11; the GIL is released around the work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

struct Box {
    float x1, y1, x2, y2;
};

struct Candidate {
    Box box;
    float score;
    int64_t class_id;
};

// Raw output of one image, any strides: element (anchor, column) at base + anchor*s_n + column*s_c bytes.
struct RawView {
    const char* base;
    int64_t s_n, s_c;
    int64_t columns;
    float at(int64_t anchor, int64_t column) const {
        return *reinterpret_cast<const float*>(base + anchor * s_n + column * s_c);
    }
    // The row as a contiguous float array: in place when columns are adjacent, else gathered.
    const float* row(int64_t anchor, std::vector<float>& scratch) const {
        if (s_c == static_cast<int64_t>(sizeof(float))) return reinterpret_cast<const float*>(base + anchor * s_n);
        for (int64_t j = 0; j < columns; ++j) scratch[static_cast<size_t>(j)] = at(anchor, j);
        return scratch.data();
    }
};

struct Settings {
    int64_t input_h, input_w;
    std::vector<int64_t> strides;
    float conf, iou;
    bool class_agnostic;
    int64_t max_det;  // < 0: unlimited
};

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

inline bool all_finite(const float* values, int64_t n) {
    // Exponent bits all ones <=> inf or NaN; OR-reduced without branches.
    uint32_t bad = 0;
    for (int64_t k = 0; k < n; ++k) {
        uint32_t bits;
        std::memcpy(&bits, values + k, sizeof(bits));
        bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

// Largest class score and its first index (NumPy argmax's tie rule). Every column of a row
// whose objectness passed is read, so non-finite values there are refused.
Candidate best_class(const float* row, int64_t num_classes, float objectness) {
    if (!all_finite(row, 5 + num_classes))
        fail("model output has NaN/inf box or class values; the model or its conversion is broken");
    const float* cls = row + 5;
    constexpr int kLanes = 8;  // independent running maxima keep the loop free of a dependency chain
    float lanes[kLanes];
    for (int j = 0; j < kLanes; ++j) lanes[j] = cls[0];
    int64_t k = 0;
    for (; k + kLanes <= num_classes; k += kLanes)
        for (int j = 0; j < kLanes; ++j) lanes[j] = cls[k + j] > lanes[j] ? cls[k + j] : lanes[j];
    float best = lanes[0];
    for (int j = 1; j < kLanes; ++j) best = lanes[j] > best ? lanes[j] : best;
    for (; k < num_classes; ++k) best = cls[k] > best ? cls[k] : best;
    int64_t best_k = 0;
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

std::vector<Candidate> select_candidates(const RawView& raw, const Settings& s) {
    std::vector<Candidate> out;
    std::vector<float> scratch(static_cast<size_t>(raw.columns));
    int64_t anchor = 0;
    for (const int64_t stride : s.strides) {
        const int64_t gh = s.input_h / stride, gw = s.input_w / stride;
        const float stride_f = static_cast<float>(stride);
        for (int64_t y = 0; y < gh; ++y) {
            for (int64_t x = 0; x < gw; ++x, ++anchor) {
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
std::vector<Candidate> nms(std::vector<Candidate> cands, int64_t num_classes, const Settings& s) {
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    struct Kept {
        Box box;
        float area;
    };
    std::vector<std::vector<Kept>> kept_by_class(s.class_agnostic ? 1 : static_cast<size_t>(num_classes));
    std::vector<Candidate> kept;
    for (const Candidate& c : cands) {
        if (s.max_det >= 0 && static_cast<int64_t>(kept.size()) >= s.max_det) break;
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

void map_to_image(std::vector<Candidate>& kept, float ratio, const std::pair<int64_t, int64_t>* image_hw) {
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

using FloatArray = py::array_t<float, py::array::forcecast>;

// Float arrays of any width, byte order or strides are accepted without a copy when they are
// native float32 (converted otherwise); anything else is refused.
FloatArray as_float_array(const py::handle& obj) {
    if (!py::isinstance<py::array>(obj)) fail("model output must be a numpy array");
    const auto arr = py::reinterpret_borrow<py::array>(obj);
    const char kind = arr.dtype().kind();
    if (kind != 'f') fail("model output has dtype " + std::string(py::str(arr.dtype())) + "; expected floating point");
    if (arr.ndim() != 3) fail("model output must have rank 3 [batch, anchors, 5 + num_classes], got rank " + std::to_string(arr.ndim()));
    return FloatArray::ensure(obj);
}

Settings check_settings(const FloatArray& raw, int64_t input_h, int64_t input_w,
                        const std::vector<int64_t>& strides, double conf, double iou, bool class_agnostic,
                        int64_t max_det, const std::vector<double>& ratios,
                        const std::vector<std::pair<int64_t, int64_t>>& image_shapes) {
    if (input_h <= 0 || input_w <= 0) fail("input size must be positive, got " + std::to_string(input_h) + "x" + std::to_string(input_w));
    if (strides.empty()) fail("strides must not be empty");
    int64_t anchors = 0;
    for (const int64_t s : strides) {
        if (s <= 0 || s > input_h || s > input_w) fail("every stride must be in [1, input size], got " + std::to_string(s));
        anchors += (input_h / s) * (input_w / s);
    }
    if (raw.shape(2) < 6) fail("model output needs 5 + num_classes >= 6 columns, got " + std::to_string(raw.shape(2)));
    if (raw.shape(1) != anchors)
        fail("model output has " + std::to_string(raw.shape(1)) + " anchors but the input size and strides give " + std::to_string(anchors));
    if (!(std::isfinite(conf) && conf >= 0)) fail("conf must be a finite number >= 0");
    if (!(iou >= 0 && iou <= 1)) fail("iou must be in [0, 1]");
    if (static_cast<int64_t>(ratios.size()) > raw.shape(0)) fail("more letterbox ratios than images in the batch");
    for (const double r : ratios)
        if (!(std::isfinite(r) && r > 0)) fail("letterbox ratios must be finite and > 0");
    if (!image_shapes.empty()) {
        if (image_shapes.size() != ratios.size()) fail("image_shapes must be empty or hold one (h, w) per ratio");
        for (const auto& hw : image_shapes)
            if (hw.first <= 0 || hw.second <= 0) fail("image shapes must be positive");
    }
    return Settings{input_h, input_w, strides, static_cast<float>(conf), static_cast<float>(iou), class_agnostic, max_det};
}

py::list to_python(const std::vector<std::vector<Candidate>>& results) {
    py::list out;
    for (const std::vector<Candidate>& kept : results) {
        const auto k = static_cast<py::ssize_t>(kept.size());
        py::array_t<float> boxes({k, static_cast<py::ssize_t>(4)});
        py::array_t<float> scores(k);
        py::array_t<int64_t> class_ids(k);
        auto b = boxes.mutable_unchecked<2>();
        auto s = scores.mutable_unchecked<1>();
        auto c = class_ids.mutable_unchecked<1>();
        for (py::ssize_t i = 0; i < k; ++i) {
            const Candidate& d = kept[static_cast<size_t>(i)];
            b(i, 0) = d.box.x1;
            b(i, 1) = d.box.y1;
            b(i, 2) = d.box.x2;
            b(i, 3) = d.box.y2;
            s(i) = d.score;
            c(i) = d.class_id;
        }
        out.append(py::make_tuple(boxes, scores, class_ids));
    }
    return out;
}

py::list postprocess(const py::object& raw_obj, int64_t input_h, int64_t input_w, const std::vector<int64_t>& strides,
                     double conf, double iou, bool class_agnostic, int64_t max_det, const std::vector<double>& ratios,
                     const std::vector<std::pair<int64_t, int64_t>>& image_shapes) {
    const auto raw = as_float_array(raw_obj);
    const Settings settings = check_settings(raw, input_h, input_w, strides, conf, iou, class_agnostic, max_det,
                                             ratios, image_shapes);
    const char* base = reinterpret_cast<const char*>(raw.data());
    const int64_t s_b = raw.strides(0), s_n = raw.strides(1), s_c = raw.strides(2), columns = raw.shape(2);
    std::vector<std::vector<Candidate>> results(ratios.size());
    {
        py::gil_scoped_release release;
        for (size_t b = 0; b < ratios.size(); ++b) {
            const RawView view{base + static_cast<int64_t>(b) * s_b, s_n, s_c, columns};
            results[b] = nms(select_candidates(view, settings), columns - 5, settings);
            map_to_image(results[b], static_cast<float>(ratios[b]), image_shapes.empty() ? nullptr : &image_shapes[b]);
        }
    }
    return to_python(results);
}

}  // namespace

PYBIND11_MODULE(_kernel, m) {
    m.doc() = "Fused YOLOX postprocess (grid decode + score filter + NMS); see yolox_deploy.processing.postprocess.";
    m.def("postprocess", &postprocess, py::arg("raw"), py::arg("input_h"), py::arg("input_w"), py::arg("strides"),
          py::arg("conf"), py::arg("iou"), py::arg("class_agnostic"), py::arg("max_det"), py::arg("ratios"),
          py::arg("image_shapes"),
          "raw float [B, N, 5 + C] -> list per image of (xyxy float32 [K, 4] in original-image pixels, "
          "scores float32 [K], class ids int64 [K]); max_det < 0 means unlimited, empty image_shapes means no clipping.");
}
