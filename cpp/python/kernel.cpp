// yolox_deploy.processing._kernel: the pybind11 binding of the shared core (cpp/core), the same
// sources the C++ library compiles. Only argument conversion lives here; the GIL is released
// around the work.
#include <climits>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/letterbox.hpp"
#include "../core/merge.hpp"
#include "../core/postprocess.hpp"
#include "../core/sources.hpp"

namespace py = pybind11;
namespace core = yolox_deploy::core;

namespace {

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

using FloatArray = py::array_t<float, py::array::forcecast>;

// Float arrays of any width, byte order or strides are accepted without a copy when they are
// native float32 (converted otherwise); anything else is refused.
FloatArray as_float_array(const py::handle& obj) {
    if (!py::isinstance<py::array>(obj)) fail("model output must be a numpy array");
    const auto arr = py::reinterpret_borrow<py::array>(obj);
    if (arr.dtype().kind() != 'f')
        fail("model output has dtype " + std::string(py::str(arr.dtype())) + "; expected floating point");
    if (arr.ndim() != 3)
        fail("model output must have rank 3 [batch, anchors, 5 + num_classes], got rank " + std::to_string(arr.ndim()));
    FloatArray converted = FloatArray::ensure(obj);
    if (!converted) {  // ensure() returns a null array (and sets a Python error) when it cannot convert
        PyErr_Clear();
        fail("model output cannot be converted to float32");
    }
    return converted;
}

py::tuple to_arrays(const std::vector<core::Detection>& kept) {
    const auto k = static_cast<py::ssize_t>(kept.size());
    py::array_t<float> boxes({k, static_cast<py::ssize_t>(4)});
    py::array_t<float> scores(k);
    py::array_t<std::int64_t> class_ids(k);
    auto b = boxes.mutable_unchecked<2>();
    auto s = scores.mutable_unchecked<1>();
    auto c = class_ids.mutable_unchecked<1>();
    for (py::ssize_t i = 0; i < k; ++i) {
        const core::Detection& d = kept[static_cast<size_t>(i)];
        b(i, 0) = d.box.x1;
        b(i, 1) = d.box.y1;
        b(i, 2) = d.box.x2;
        b(i, 3) = d.box.y2;
        s(i) = d.score;
        c(i) = d.class_id;
    }
    return py::make_tuple(boxes, scores, class_ids);
}

void check_mappings(const std::vector<double>& ratios, const std::vector<core::ImageHW>& image_shapes,
                    py::ssize_t batch) {
    if (static_cast<py::ssize_t>(ratios.size()) > batch) fail("more letterbox ratios than images in the batch");
    if (!image_shapes.empty() && image_shapes.size() != ratios.size())
        fail("image_shapes must be empty or hold one (h, w) per ratio");
    for (size_t b = 0; b < ratios.size(); ++b) core::check_mapping(ratios[b], image_shapes.empty() ? nullptr : &image_shapes[b]);
}

py::list postprocess(const py::object& raw_obj, std::int64_t input_h, std::int64_t input_w,
                     const std::vector<std::int64_t>& strides, double conf, double iou, bool class_agnostic,
                     std::int64_t max_det, const std::vector<double>& ratios,
                     const std::vector<core::ImageHW>& image_shapes) {
    const auto raw = as_float_array(raw_obj);
    const core::PostprocessSettings settings =
        core::make_settings(raw.shape(1), raw.shape(2), input_h, input_w, strides, conf, iou, class_agnostic, max_det);
    check_mappings(ratios, image_shapes, raw.shape(0));
    const char* base = reinterpret_cast<const char*>(raw.data());
    std::vector<std::vector<core::Detection>> results(ratios.size());
    {
        py::gil_scoped_release release;
        for (size_t b = 0; b < ratios.size(); ++b) {
            const core::RawView view{base + static_cast<std::int64_t>(b) * raw.strides(0), raw.strides(1),
                                     raw.strides(2), raw.shape(2)};
            results[b] = core::postprocess_image(view, settings, static_cast<float>(ratios[b]),
                                                 image_shapes.empty() ? nullptr : &image_shapes[b]);
        }
    }
    py::list out;
    for (const auto& kept : results) out.append(to_arrays(kept));
    return out;
}

py::tuple end_to_end(const py::array_t<float, py::array::c_style | py::array::forcecast>& boxes,
                     const py::array_t<float, py::array::c_style | py::array::forcecast>& scores,
                     const py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>& class_ids,
                     double conf, std::int64_t max_det, double ratio, const std::vector<std::int64_t>& clip_hw) {
    const py::ssize_t k = scores.ndim() == 1 ? scores.shape(0) : -1;
    if (k < 0 || boxes.ndim() != 2 || boxes.shape(0) != k || boxes.shape(1) != 4 || class_ids.ndim() != 1 ||
        class_ids.shape(0) != k)
        fail("end-to-end outputs of one image must be boxes [K, 4], scores [K] and class ids [K]");
    if (!clip_hw.empty() && clip_hw.size() != 2) fail("clip must be empty or (height, width)");
    const core::ImageHW hw = clip_hw.empty() ? core::ImageHW{0, 0} : core::ImageHW{clip_hw[0], clip_hw[1]};
    const core::ImageHW* clip = clip_hw.empty() ? nullptr : &hw;
    core::check_mapping(ratio, clip);
    std::vector<core::Detection> kept;
    {
        py::gil_scoped_release release;
        kept = core::end_to_end_image(boxes.data(), scores.data(), class_ids.data(), k, static_cast<float>(conf),
                                      max_det, static_cast<float>(ratio), clip);
    }
    return to_arrays(kept);
}

using Pixels = py::array_t<std::uint8_t, py::array::c_style>;

// The caller's output array itself (writing into a converted copy would be lost).
template <typename T>
T* writable(py::array& out, const char* what) {
    if (!out.dtype().is(py::dtype::of<T>()) || !(out.flags() & py::array::c_style) || !out.writeable())
        fail(std::string("letterbox output must be a writable C-contiguous ") + what + " array");
    return static_cast<T*>(out.mutable_data());
}

// A single row's stride is never read, and NumPy calls a one-row array contiguous whatever its stride (it
// can be negative, as in image[::-1]): it is taken as width x 3.
std::ptrdiff_t row_stride(const py::array& image) {
    return image.shape(0) == 1 ? static_cast<std::ptrdiff_t>(3 * image.shape(1))
                               : static_cast<std::ptrdiff_t>(image.strides(0));
}

core::ImageView image_view(const Pixels& image) {
    return core::ImageView{image.data(), static_cast<int>(image.shape(0)), static_cast<int>(image.shape(1)),
                           row_stride(image)};
}

// The pixels the core reads: the caller's own array when only its rows are strided (a window of a larger
// image: sliced inference letterboxes windows without copying them), else a C-contiguous copy. `keep`
// holds whichever array `view` points into.
struct PixelSource {
    py::array keep;
    core::ImageView view;
};

PixelSource pixel_source(const py::array& image) {
    if (!image.dtype().is(py::dtype::of<std::uint8_t>()) || image.ndim() != 3 || image.shape(2) != 3)
        fail("image must be a uint8 HxWx3 array");
    if (image.shape(0) > INT_MAX || image.shape(1) > INT_MAX / 3)
        fail("image is too large (" + std::to_string(image.shape(0)) + "x" + std::to_string(image.shape(1)) + " pixels)");
    if (image.strides(2) == 1 && image.strides(1) == 3 && row_stride(image) >= 3 * image.shape(1)) {
        return {image, core::ImageView{static_cast<const std::uint8_t*>(image.data()), static_cast<int>(image.shape(0)),
                                       static_cast<int>(image.shape(1)), row_stride(image)}};
    }
    Pixels copy = Pixels::ensure(image);
    if (!copy) {
        PyErr_Clear();
        fail("image cannot be copied into a contiguous uint8 HxWx3 array");
    }
    return {copy, image_view(copy)};
}

double letterbox_chw(const py::array& image, py::array out, int threads) {
    float* dst = writable<float>(out, "float32 [3, H, W]");
    if (out.ndim() != 3 || out.shape(0) != 3) fail("letterbox output must be a float32 [3, H, W] array");
    const PixelSource pixels = pixel_source(image);
    const core::ImageView view = pixels.view;
    const int h = static_cast<int>(out.shape(1)), w = static_cast<int>(out.shape(2));
    py::gil_scoped_release release;
    return core::letterbox_to_chw(view, h, w, dst, threads).ratio;
}

double letterbox_hwc(const py::array& image, py::array out, int threads) {
    std::uint8_t* dst = writable<std::uint8_t>(out, "uint8 [H, W, 3]");
    if (out.ndim() != 3 || out.shape(2) != 3) fail("letterbox output must be a uint8 [H, W, 3] array");
    const PixelSource pixels = pixel_source(image);
    const core::ImageView view = pixels.view;
    const int h = static_cast<int>(out.shape(0)), w = static_cast<int>(out.shape(1));
    py::gil_scoped_release release;
    return core::letterbox_to_hwc(view, h, w, dst, threads).ratio;
}

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Int64s = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

py::tuple merge(const Doubles& xyxy, const Doubles& scores, const Int64s& class_ids, const std::string& kind,
                const std::string& match, double threshold, bool class_agnostic, bool recheck) {
    const py::ssize_t n = scores.size();
    if (xyxy.ndim() != 2 || xyxy.shape(0) != n || xyxy.shape(1) != 4 || class_ids.size() != n)
        fail("merge takes xyxy [N, 4], scores [N] and class ids [N]");
    if (kind != "nms" && kind != "greedy_nmm") fail("merge is 'nms' or 'greedy_nmm', got '" + kind + "'");
    if (match != "iou" && match != "ios") fail("match is 'iou' or 'ios', got '" + match + "'");
    std::vector<core::Merged> kept;
    {
        py::gil_scoped_release release;
        kept = core::merge_detections(xyxy.data(), scores.data(), class_ids.data(), n,
                                      kind == "nms" ? core::MergeKind::nms : core::MergeKind::greedy_nmm,
                                      match == "ios" ? core::MatchKind::ios : core::MatchKind::iou, threshold,
                                      class_agnostic, recheck);
    }
    const auto k = static_cast<py::ssize_t>(kept.size());
    py::array_t<double> boxes({k, static_cast<py::ssize_t>(4)});
    py::array_t<double> out_scores(k);
    py::array_t<std::int64_t> out_classes(k);
    auto b = boxes.mutable_unchecked<2>();
    auto s = out_scores.mutable_unchecked<1>();
    auto c = out_classes.mutable_unchecked<1>();
    for (py::ssize_t i = 0; i < k; ++i) {
        b(i, 0) = kept[i].x1, b(i, 1) = kept[i].y1, b(i, 2) = kept[i].x2, b(i, 3) = kept[i].y2;
        s(i) = kept[i].score;
        c(i) = kept[i].class_id;
    }
    return py::make_tuple(boxes, out_scores, out_classes);
}

}  // namespace

PYBIND11_MODULE(_kernel, m) {
    m.def("letterbox_isa", &core::letterbox_instruction_set, "the vector instructions the letterbox runs on this CPU");
    m.def("merge", &merge, py::arg("xyxy"), py::arg("scores"), py::arg("class_ids"), py::arg("merge"),
          py::arg("match"), py::arg("threshold"), py::arg("class_agnostic"), py::arg("recheck"),
          "merge overlapping slice detections (NMS / greedy NMM, IoU / IOS); see processing/merge.py");
    m.doc() = "The shared C++ core (letterbox, grid decode + score filter + NMS); see yolox_deploy.processing.";
    m.def("postprocess", &postprocess, py::arg("raw"), py::arg("input_h"), py::arg("input_w"), py::arg("strides"),
          py::arg("conf"), py::arg("iou"), py::arg("class_agnostic"), py::arg("max_det"), py::arg("ratios"),
          py::arg("image_shapes"),
          "raw float [B, N, 5 + C] -> list per image of (xyxy float32 [K, 4] in original-image pixels, "
          "scores float32 [K], class ids int64 [K]); max_det < 0 means unlimited, empty image_shapes means no clipping.");
    m.def("end_to_end", &end_to_end, py::arg("boxes"), py::arg("scores"), py::arg("class_ids"), py::arg("conf"),
          py::arg("max_det"), py::arg("ratio"), py::arg("clip_hw"),
          "one image's end-to-end detections (letterboxed-input xyxy) -> (xyxy float32 [K, 4] in original-image "
          "pixels, scores, class ids int64) with score >= conf, at most max_det (< 0: all); empty clip_hw: no clipping");
    m.def("letterbox_chw", &letterbox_chw, py::arg("image"), py::arg("out"), py::arg("threads") = 1,
          "BGR uint8 HxWx3 (rows may be strided: a window of a larger image) -> letterboxed into float32 [3, H, W] `out` on up to `threads` threads; "
          "returns the ratio");
    m.def("letterbox_hwc", &letterbox_hwc, py::arg("image"), py::arg("out"), py::arg("threads") = 1,
          "BGR uint8 HxWx3 (rows may be strided: a window of a larger image) -> letterboxed into uint8 [H, W, 3] `out` on up to `threads` threads; "
          "returns the ratio");
    m.attr("CORE_SOURCES_SHA256") = yolox_deploy::core::sources_sha256();
}
