// Detector: model resolution (file or deployment folder), settings with the Python Detector's
// rules, then letterbox -> backend -> postprocess through the shared core (cpp/core).
#include "yolox_deploy/detector.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "../core/letterbox.hpp"
#include "../core/merge.hpp"
#include "../core/postprocess.hpp"
#include "../core/sources.hpp"
#include "backend.hpp"
#include "deployment.hpp"
#include "errors.hpp"
#include "model_info.hpp"

namespace fs = std::filesystem;

namespace yolox_deploy {
namespace {

using detail::Backend;
using detail::BackendEntry;

std::string lower_suffix(const std::string& path) {
    std::string suffix = fs::path(path).extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), ::tolower);
    return suffix;
}

std::string format_number(double value) {
    std::string text = std::to_string(value);
    text.erase(text.find_last_not_of('0') + 1);
    if (!text.empty() && text.back() == '.') text.pop_back();
    return text;
}

const BackendEntry& find_backend(const std::string& name) {
    std::string known;
    for (const BackendEntry& entry : detail::backend_entries()) {
        if (entry.name == name) return entry;
        known += (known.empty() ? "" : ", ") + std::string(entry.name);
    }
    throw BackendUnavailableError("unknown backend '" + name + "'; the C++ library knows " + known);
}

std::string backend_for_file(const std::string& path) {
    const std::string suffix = lower_suffix(path);
    if (suffix == ".pth" || suffix == ".pt")
        throw ModelFileError(fs::path(path).filename().string() + " is a PyTorch checkpoint; the C++ library runs "
                             "exported models: yolox-export --to onnx (or openvino) first");
    std::string known;
    for (const BackendEntry& entry : detail::backend_entries())
        for (const std::string& s : entry.suffixes) {
            if (s == suffix) return entry.name;
            known += (known.empty() ? "" : ", ") + s;
        }
    throw ModelFileError("cannot tell the backend of " + fs::path(path).filename().string() + " from its suffix (known: " +
                         known + "); pass the backend (--backend) or use a model file of one of those kinds");
}

std::unique_ptr<Backend> open_backend(const std::string& name, const std::string& path,
                                      const detail::BackendOptions& options) {
    const BackendEntry& entry = find_backend(name);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw ModelFileError("model file not found: " + path);  // before "not compiled"
    if (entry.open == nullptr) {
        if (std::string(entry.cmake_option).empty())
            throw BackendUnavailableError("backend '" + name + "' has no C++ implementation yet (see docs/cpp.md); "
                                          "use the Python package for it, or onnxruntime/openvino here");
        throw BackendUnavailableError("backend '" + name + "' is not compiled into this build of yolox_deploy; "
                                      "reconfigure with " + entry.cmake_option + " (see docs/cpp.md)");
    }
    return entry.open(path, options);
}

std::pair<int, int> checked_input_size(std::pair<int, int> size, int multiple) {
    const auto [h, w] = size;
    if (h > detail::kMaxInputSide || w > detail::kMaxInputSide)
        throw InvalidInputError("input size " + std::to_string(h) + "x" + std::to_string(w) + " is over the largest "
                                "side of " + std::to_string(detail::kMaxInputSide) + "; use e.g. 640x640");
    if (h <= 0 || w <= 0 || h % multiple != 0 || w % multiple != 0) {
        const auto nearest = [multiple](int v) {
            return std::max(multiple, static_cast<int>(std::lround(static_cast<double>(v) / multiple)) * multiple);
        };
        throw InvalidInputError("input size " + std::to_string(h) + "x" + std::to_string(w) +
                                " is not a positive multiple of " + std::to_string(multiple) + "; use e.g. " +
                                std::to_string(nearest(h)) + "x" + std::to_string(nearest(w)));
    }
    return size;
}

// Refuse settings an end-to-end graph cannot honour (as check_settings_against_baked in Python).
void check_against_baked(const detail::EndToEndSettings& baked, float conf, const std::optional<float>& iou,
                         int max_det, const std::optional<bool>& agnostic, const std::string& name) {
    if (baked.conf && conf < *baked.conf)
        throw InvalidInputError(name + " has conf " + format_number(*baked.conf) + " baked into its graph and cannot "
                                "return boxes below it (asked conf=" + format_number(conf) + "); re-export with "
                                "`yolox-export --nms --conf " + format_number(conf) + "`");
    if (iou && baked.iou && std::fabs(*iou - *baked.iou) > 1e-6f)
        throw InvalidInputError(name + " runs NMS at iou " + format_number(*baked.iou) + " inside its graph (asked iou=" +
                                format_number(*iou) + "); re-export with `yolox-export --nms --iou " +
                                format_number(*iou) + "`");
    if (baked.max_det && max_det > *baked.max_det)
        throw InvalidInputError(name + " keeps at most " + std::to_string(*baked.max_det) + " detections (asked max_det=" +
                                std::to_string(max_det) + "); re-export with `yolox-export --nms --max-det " +
                                std::to_string(max_det) + "`");
    if (baked.max_det && max_det < 0)
        throw InvalidInputError(name + " keeps at most " + std::to_string(*baked.max_det) + " detections and cannot "
                                "return all (max_det=-1); pass max_det <= that, or re-export with a larger --max-det");
    if (agnostic && baked.agnostic && *agnostic != *baked.agnostic)
        throw InvalidInputError(name + " runs " + (*baked.agnostic ? "class-agnostic" : "class-aware") +
                                " NMS inside its graph (asked class_agnostic=" + (*agnostic ? "true" : "false") +
                                "); re-export with" + (*baked.agnostic ? "out" : "") + " --agnostic");
}

cv::Mat as_bgr(const cv::Mat& image) {
    if (image.empty()) throw InvalidInputError("image is empty (0 pixels)");
    if (image.depth() != CV_8U)
        throw InvalidInputError("image has depth " + std::to_string(image.depth()) + " (OpenCV type " +
                                std::to_string(image.type()) + "); expected 8-bit BGR 0-255 (convert with "
                                "image.convertTo(out, CV_8U))");
    if (image.dims != 2) throw InvalidInputError("image must be 2-D (rows x cols), got " + std::to_string(image.dims) + " dims");
    cv::Mat bgr;
    switch (image.channels()) {
        case 3: return image;
        case 1: cv::cvtColor(image, bgr, cv::COLOR_GRAY2BGR); return bgr;
        case 4: cv::cvtColor(image, bgr, cv::COLOR_BGRA2BGR); return bgr;
        default:
            throw InvalidInputError("image has " + std::to_string(image.channels()) +
                                    " channels; expected 1 (gray), 3 (BGR) or 4 (BGRA)");
    }
}

// Each image is letterboxed on up to 2 threads (bands of rows, the bytes of one thread): the
// runtime is idle meanwhile, so its cores are free.
constexpr int kLetterboxThreads = 2;

int letterbox_threads() {
    return std::max(1, std::min(kLetterboxThreads, static_cast<int>(std::thread::hardware_concurrency())));
}

core::ImageView view_of(const cv::Mat& bgr) {
    return core::ImageView{bgr.ptr<std::uint8_t>(0), bgr.rows, bgr.cols, static_cast<std::ptrdiff_t>(bgr.step[0])};
}

double elapsed_ms(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// hidden: a nested class takes the visibility of the exported Detector otherwise
struct __attribute__((visibility("hidden"))) Detector::Impl {
    ModelInfo info;
    std::unique_ptr<Backend> backend;
    detail::EndToEndSettings baked;
    int static_batch = 0;  // > 0: the model's fixed batch

    static std::unique_ptr<Impl> open(const std::string& model, const DetectorOptions& options);
    std::vector<std::vector<Detection>> run_batches(const std::vector<cv::Mat>& images, StageTimes* times) const;
    std::vector<Detection> run_sliced(const cv::Mat& image, const SliceSettings& slices, StageTimes* times) const;

    // Checks and sets the thresholds; an end-to-end graph refuses what it cannot honour (iou and
    // class_agnostic only where `explicit_iou` / `explicit_agnostic`: a default is the graph's own).
    void apply(const Thresholds& t, bool explicit_iou, bool explicit_agnostic) {
        if (!(t.conf >= 0 && t.conf <= 1) || !(t.iou >= 0 && t.iou <= 1))
            throw InvalidInputError("conf and iou must be in [0, 1], got conf=" + format_number(t.conf) +
                                    ", iou=" + format_number(t.iou));
        if (t.max_det == 0 || t.max_det < -1)
            throw InvalidInputError("max_det must be >= 1, or -1 for all, got " + std::to_string(t.max_det));
        if (info.end_to_end)
            check_against_baked(baked, t.conf, explicit_iou ? std::optional<float>(t.iou) : std::nullopt, t.max_det,
                                explicit_agnostic ? std::optional<bool>(t.class_agnostic) : std::nullopt,
                                fs::path(info.path).filename().string());
        info.conf = t.conf, info.iou = t.iou, info.max_det = t.max_det, info.class_agnostic = t.class_agnostic;
    }

    const std::vector<std::string>& names_for(std::int64_t num_classes) const {
        if (info.class_names.empty()) return detail::default_class_names(num_classes);
        if (static_cast<std::int64_t>(info.class_names.size()) != num_classes)
            throw InvalidInputError(std::to_string(info.class_names.size()) + " class names are known but the model "
                                    "predicts " + std::to_string(num_classes) + " classes");
        return info.class_names;
    }

    // Network-input buffers, reused across calls (a fresh allocation would cost the kernel's page
    // zeroing on every call, about as much as the letterbox itself); each call leases one, at most
    // kMaxIdleBuffers wait between calls, and all go with the Detector.
    static constexpr size_t kMaxIdleBuffers = 4;
    mutable std::mutex buffers_mutex;
    mutable std::vector<std::vector<float>> idle_buffers;

    struct BufferLease {
        const Impl& owner;
        std::vector<float> buffer;
        BufferLease(const Impl& impl, size_t bytes) : owner(impl) {
            {
                std::lock_guard<std::mutex> lock(owner.buffers_mutex);
                if (!owner.idle_buffers.empty()) {
                    buffer = std::move(owner.idle_buffers.back());
                    owner.idle_buffers.pop_back();
                }
            }
            const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
            if (buffer.size() < floats) buffer.resize(floats);
        }
        ~BufferLease() {
            std::lock_guard<std::mutex> lock(owner.buffers_mutex);
            if (owner.idle_buffers.size() < kMaxIdleBuffers) owner.idle_buffers.push_back(std::move(buffer));
        }
        BufferLease(const BufferLease&) = delete;
        BufferLease& operator=(const BufferLease&) = delete;
    };

    // Letterboxes `images` into `batch`: n images (padded with copies of the last) of `per_image`
    // values of T each.
    template <typename T, typename Letterbox>
    static void letterbox_batch(const std::vector<cv::Mat>& images, size_t n, size_t per_image, Letterbox&& letterbox,
                                T* batch, std::vector<double>& ratios, std::vector<core::ImageHW>& shapes) {
        for (size_t i = 0; i < images.size(); ++i) {
            const cv::Mat bgr = as_bgr(images[i]);
            ratios.push_back(letterbox(view_of(bgr), batch + i * per_image).ratio);
            shapes.emplace_back(bgr.rows, bgr.cols);
        }
        for (size_t i = images.size(); i < n; ++i)
            std::copy_n(batch + (images.size() - 1) * per_image, per_image, batch + i * per_image);
    }

    // Images -> one backend batch: uint8 pixels where the runtime converts them itself (as in
    // Python), else a float32 tensor.
    std::vector<std::vector<Detection>> run_batch(const std::vector<cv::Mat>& images, StageTimes* times) const {
        auto start = std::chrono::steady_clock::now();
        const auto [h, w] = info.input_size;
        const size_t n = std::max(images.size(), static_cast<size_t>(static_batch));
        const size_t per_image = static_cast<size_t>(3) * h * w;
        std::vector<double> ratios;
        std::vector<core::ImageHW> shapes;
        auto stage_done = [&](double StageTimes::*stage) {
            if (times) times->*stage += elapsed_ms(start), start = std::chrono::steady_clock::now();
        };
        detail::BackendOutput out;
        if (backend->takes_pixels()) {
            BufferLease lease(*this, n * per_image);
            auto* pixels = reinterpret_cast<std::uint8_t*>(lease.buffer.data());
            letterbox_batch<std::uint8_t>(
                images, n, per_image,
                [&](const core::ImageView& view, std::uint8_t* dst) {
                    return core::letterbox_to_hwc(view, h, w, dst, letterbox_threads());
                },
                pixels, ratios, shapes);
            stage_done(&StageTimes::preprocess_ms);
            out = backend->infer_pixels(pixels, static_cast<std::int64_t>(n), h, w);
        } else {
            BufferLease lease(*this, n * per_image * sizeof(float));
            letterbox_batch<float>(
                images, n, per_image,
                [&](const core::ImageView& view, float* dst) {
                    return core::letterbox_to_chw(view, h, w, dst, letterbox_threads());
                },
                lease.buffer.data(), ratios, shapes);
            stage_done(&StageTimes::preprocess_ms);
            out = backend->infer(lease.buffer.data(), static_cast<std::int64_t>(n), h, w);
        }
        stage_done(&StageTimes::inference_ms);
        auto results = out.end_to_end ? map_end_to_end(out, ratios, shapes) : postprocess(out, ratios, shapes);
        stage_done(&StageTimes::postprocess_ms);
        return results;
    }

    std::vector<std::vector<Detection>> postprocess(const detail::BackendOutput& out, const std::vector<double>& ratios,
                                                    const std::vector<core::ImageHW>& shapes) const {
        std::vector<std::int64_t> strides(info.strides.begin(), info.strides.end());
        core::PostprocessSettings settings;
        try {
            settings = core::make_settings(out.anchors, out.columns, info.input_size.first, info.input_size.second,
                                           strides, info.conf, info.iou, info.class_agnostic, info.max_det);
        } catch (const std::invalid_argument& e) {
            throw ModelFileError(fs::path(info.path).filename().string() + ": " + e.what());
        }
        const std::vector<std::string>& names = names_for(out.columns - 5);
        std::vector<std::vector<Detection>> results;
        const auto image_stride = static_cast<std::int64_t>(sizeof(float)) * out.anchors * out.columns;
        for (size_t b = 0; b < ratios.size(); ++b) {
            const core::RawView view{reinterpret_cast<const char*>(out.raw_data()) + b * image_stride,
                                     static_cast<std::int64_t>(sizeof(float)) * out.columns,
                                     static_cast<std::int64_t>(sizeof(float)), out.columns};
            std::vector<core::Detection> kept;
            try {
                kept = core::postprocess_image(view, settings, static_cast<float>(ratios[b]),
                                               info.clip_boxes ? &shapes[b] : nullptr);
            } catch (const std::invalid_argument& e) {
                throw ModelFileError(fs::path(info.path).filename().string() + ": " + e.what());
            }
            results.push_back(to_detections(kept, names));
        }
        return results;
    }

    std::vector<std::vector<Detection>> map_end_to_end(const detail::BackendOutput& out, const std::vector<double>& ratios,
                                                       const std::vector<core::ImageHW>& shapes) const {
        std::vector<std::vector<Detection>> results;
        const std::vector<std::string>& names =
            info.class_names.empty() ? detail::default_class_names(80) : info.class_names;
        for (size_t b = 0; b < ratios.size(); ++b) {
            const std::int64_t offset = static_cast<std::int64_t>(b) * out.max_dets;
            const auto kept = core::end_to_end_image(out.boxes.data() + 4 * offset, out.scores.data() + offset,
                                                     out.class_ids.data() + offset, out.num_dets[b], info.conf,
                                                     info.max_det, static_cast<float>(ratios[b]),
                                                     info.clip_boxes ? &shapes[b] : nullptr);
            for (const auto& d : kept)
                if (d.class_id < 0 || d.class_id >= static_cast<std::int64_t>(names.size()))
                    throw ModelFileError(fs::path(info.path).filename().string() + " returned class id " +
                                         std::to_string(d.class_id) + " and has " + std::to_string(names.size()) +
                                         " class names; pass its class names (DetectorOptions::class_names)");
            results.push_back(to_detections(kept, names));
        }
        return results;
    }

    static std::vector<Detection> to_detections(const std::vector<core::Detection>& kept,
                                                const std::vector<std::string>& names) {
        std::vector<Detection> out;
        out.reserve(kept.size());
        for (const auto& d : kept)
            out.push_back(Detection{d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score, static_cast<int>(d.class_id),
                                    names[static_cast<size_t>(d.class_id)]});
        return out;
    }
};

std::unique_ptr<Detector::Impl> Detector::Impl::open(const std::string& model, const DetectorOptions& options) {
    auto impl = std::make_unique<Impl>();
    ModelInfo& info = impl->info;
    std::optional<detail::Deployment> deployment;
    std::string path = model;
    std::error_code ec;
    if (fs::is_directory(model, ec)) {
        deployment = detail::read_deployment(model);  // a folder without deploy.json is refused there
        path = deployment->model;
        info.deployment = model;
    }
    const std::string backend = !options.backend.empty() ? options.backend
                                : deployment ? deployment->backend
                                             : backend_for_file(path);
    detail::BackendOptions backend_options;
    backend_options.threads = options.threads > 0 ? options.threads : deployment ? deployment->threads : 0;
    backend_options.precision = !options.precision.empty() ? options.precision
                                : deployment ? deployment->arithmetic
                                             : "fp32";
    if (backend_options.precision != "fp32" && backend_options.precision != "bf16" && backend_options.precision != "fp16")
        throw InvalidInputError("unknown precision '" + backend_options.precision + "'; use one of fp32, bf16, fp16");
    backend_options.spinning = deployment && deployment->spinning.value_or(false);
    impl->backend = open_backend(backend, path, backend_options);
    info.path = path;
    info.backend = backend;
    info.precision = impl->backend->precision();
    info.threads = backend_options.threads;
    info.end_to_end = impl->backend->end_to_end();
    info.pixel_input = impl->backend->takes_pixels();
    detail::ModelMetadata metadata;
    try {
        metadata = detail::parse_metadata(impl->backend->metadata());
    } catch (const ModelFileError& e) {
        throw ModelFileError(fs::path(path).filename().string() + ": " + e.what());
    }
    info.strides = metadata.strides;
    info.class_names = !options.class_names.empty() ? options.class_names : metadata.class_names;
    impl->baked = metadata.end_to_end;

    // thresholds: the caller's, else the deployment's, else the model's stored defaults, else 0.25 / 0.45 / 300
    Thresholds t;
    t.conf = options.conf ? *options.conf : deployment && deployment->conf ? *deployment->conf : metadata.conf.value_or(0.25f);
    t.max_det = options.max_det ? *options.max_det
                : deployment && deployment->max_det ? *deployment->max_det
                                                    : metadata.max_det.value_or(300);
    t.iou = options.iou ? *options.iou : deployment && deployment->iou ? *deployment->iou : metadata.iou.value_or(0.45f);
    std::optional<bool> agnostic = options.class_agnostic;
    if (!agnostic && deployment) agnostic = deployment->class_agnostic;
    t.class_agnostic = agnostic.value_or(impl->baked.agnostic.value_or(false));
    // an end-to-end graph is checked against what was asked for explicitly (an iou or agnostic left
    // at its default is the graph's own)
    const std::string name = fs::path(path).filename().string();
    info.path = path;
    impl->apply(t, options.iou.has_value(), agnostic.has_value());
    info.clip_boxes = options.clip_boxes;

    const auto shape = impl->backend->input_shape();
    std::optional<std::pair<int, int>> requested = options.input_size;
    if (!requested && deployment) requested = deployment->input_size;
    std::pair<int, int> size;
    if (shape[2] > 0 && shape[3] > 0) {
        size = {static_cast<int>(shape[2]), static_cast<int>(shape[3])};
        if (requested && *requested != size)
            throw InvalidInputError(name + " has a static input of " + std::to_string(size.first) + "x" +
                                    std::to_string(size.second) + "; input size " + std::to_string(requested->first) +
                                    "x" + std::to_string(requested->second) +
                                    " cannot be used (export with --dynamic-hw for that)");
    } else if (requested) {
        size = *requested;
    } else if (metadata.input_size) {
        size = *metadata.input_size;
    } else {
        throw InvalidInputError("the input size of " + name + " is dynamic and not stored in its metadata: pass the "
                                "input size (height, width)");
    }
    info.input_size = checked_input_size(size, *std::max_element(info.strides.begin(), info.strides.end()));
    impl->static_batch = shape[0] > 0 ? static_cast<int>(shape[0]) : 0;
    if (options.batch_size < 0 || options.batch_size > kMaxBatchSize)
        throw InvalidInputError("batch size " + std::to_string(options.batch_size) + " is outside [1, " +
                                std::to_string(kMaxBatchSize) + "] (0: the deployment's, else 1)");
    info.batch_size = impl->static_batch > 0 ? impl->static_batch
                      : options.batch_size > 0 ? options.batch_size
                      : deployment ? deployment->batch
                                   : 1;
    return impl;
}

Detector::Detector(const std::string& model, const DetectorOptions& options)
    : impl_(detail::translated("opening " + model, [&] { return Impl::open(model, options); })) {}

Thresholds Detector::thresholds() const {
    const ModelInfo& info = impl_->info;
    return Thresholds{info.conf, info.iou, info.max_det, info.class_agnostic};
}

void Detector::set_thresholds(const Thresholds& thresholds) {
    const ModelInfo& info = impl_->info;
    impl_->apply(thresholds, thresholds.iou != info.iou, thresholds.class_agnostic != info.class_agnostic);
}

Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

const ModelInfo& Detector::info() const { return impl_->info; }

std::vector<Detection> Detector::detect(const cv::Mat& image, StageTimes* times) const {
    return detail::translated("detecting", [&] { return impl_->run_batch({image}, times).front(); });
}

std::vector<std::vector<Detection>> Detector::detect(const std::vector<cv::Mat>& images, StageTimes* times) const {
    return detail::translated("detecting", [&] { return impl_->run_batches(images, times); });
}

std::vector<std::vector<Detection>> Detector::Impl::run_batches(const std::vector<cv::Mat>& images,
                                                                StageTimes* times) const {
    std::vector<std::vector<Detection>> results;
    const size_t step = static_cast<size_t>(std::max(1, info.batch_size));
    for (size_t start = 0; start < images.size(); start += step) {
        const std::vector<cv::Mat> group(images.begin() + static_cast<std::ptrdiff_t>(start),
                                         images.begin() + static_cast<std::ptrdiff_t>(std::min(images.size(), start + step)));
        for (auto& r : run_batch(group, times)) results.push_back(std::move(r));
    }
    return results;
}

namespace {

constexpr int kSliceMultiple = 32;
constexpr int kSliceBatch = 8;       // slice inputs per backend call unless the model or caller fixes one
constexpr std::int64_t kMaxWindows = 4096;
constexpr float kLowConf = 0.1f;    // SAHI's LOW_MODEL_CONFIDENCE

void check_slices(const SliceSettings& s) {
    if (s.height <= 0 || s.width <= 0 || s.height % kSliceMultiple || s.width % kSliceMultiple)
        throw InvalidInputError("slice size " + std::to_string(s.height) + "x" + std::to_string(s.width) +
                                " is not a positive multiple of 32 (height, width): use e.g. 416 or 640");
    if (!(s.overlap >= 0 && s.overlap < 1))
        throw InvalidInputError("slice overlap " + format_number(s.overlap) + " is outside [0, 1): use e.g. 0.2");
    if (s.merge != "nms" && s.merge != "greedy_nmm")
        throw InvalidInputError("unknown merge '" + s.merge + "': use one of nms, greedy_nmm");
    if (s.match != "iou" && s.match != "ios")
        throw InvalidInputError("unknown match '" + s.match + "': use one of iou, ios");
    if (s.recheck != "sahi" && s.recheck != "none")
        throw InvalidInputError("unknown recheck '" + s.recheck + "': use one of sahi, none");
    if (!(s.match_threshold >= 0 && s.match_threshold <= 1))
        throw InvalidInputError("match_threshold " + format_number(s.match_threshold) + " is outside [0, 1]");
}

// Windows along one axis as sahi's get_slice_bboxes places them, counted without listing them.
std::int64_t count_along(std::int64_t length, std::int64_t size, std::int64_t step_back) {
    std::int64_t count = 0, start = 0, end = 0;
    while (end < length) {
        end = start + size;
        ++count;
        if (end >= length || size - step_back <= 0) break;
        start = end - step_back;
    }
    return count;
}

struct Window {
    int x1, y1, x2, y2;
};

// sahi's get_slice_bboxes (yolox_deploy/processing/merge.py slice_windows): row by row, the last
// window of a row or column moved back to end at the image's edge.
std::vector<Window> slice_windows(int height, int width, const SliceSettings& s) {
    const int y_overlap = static_cast<int>(static_cast<double>(s.overlap) * s.height);
    const int x_overlap = static_cast<int>(static_cast<double>(s.overlap) * s.width);
    std::vector<Window> windows;
    int y_min = 0, y_max = 0;
    while (y_max < height) {
        int x_min = 0, x_max = 0;
        y_max = y_min + s.height;
        while (x_max < width) {
            x_max = x_min + s.width;
            if (y_max > height || x_max > width) {
                x_max = std::min(width, x_max), y_max = std::min(height, y_max);
                x_min = std::max(0, x_max - s.width), y_min = std::max(0, y_max - s.height);
            }
            windows.push_back(Window{x_min, y_min, x_max, y_max});
            x_min = x_max - x_overlap;
        }
        y_min = y_max - y_overlap;
    }
    return windows;
}

}  // namespace

std::vector<Detection> Detector::detect_sliced(const cv::Mat& image, const SliceSettings& slices,
                                               StageTimes* times) const {
    return detail::translated("detecting on slices", [&] { return impl_->run_sliced(image, slices, times); });
}

std::vector<Detection> Detector::Impl::run_sliced(const cv::Mat& image, const SliceSettings& s,
                                                  StageTimes* times) const {
    check_slices(s);
    const cv::Mat bgr = as_bgr(image);
    const double python_overlap = s.overlap;
    const std::int64_t count = count_along(bgr.rows, s.height, static_cast<std::int64_t>(python_overlap * s.height)) *
                               count_along(bgr.cols, s.width, static_cast<std::int64_t>(python_overlap * s.width));
    if (count > kMaxWindows)
        throw InvalidInputError(std::to_string(s.height) + "x" + std::to_string(s.width) + " slices with overlap " +
                                format_number(s.overlap) + " cut a " + std::to_string(bgr.rows) + "x" +
                                std::to_string(bgr.cols) + " image into " + std::to_string(count) + " windows (at most " +
                                std::to_string(kMaxWindows) + "): use larger slices or a smaller overlap");
    const std::vector<Window> windows = slice_windows(bgr.rows, bgr.cols, s);
    const bool full = s.full_image && windows.size() > 1;
    std::vector<cv::Mat> inputs;
    for (const Window& w : windows) inputs.push_back(bgr(cv::Rect(w.x1, w.y1, w.x2 - w.x1, w.y2 - w.y1)));
    if (full) inputs.push_back(bgr);
    // chunks of the model's static batch, else the caller's (or deployment's) batch size, else 8
    const size_t chunk = static_cast<size_t>(static_batch > 0 ? static_batch : info.batch_size > 1 ? info.batch_size
                                                                                                   : kSliceBatch);
    std::vector<std::vector<Detection>> found;
    for (size_t start = 0; start < inputs.size(); start += chunk) {
        const std::vector<cv::Mat> group(inputs.begin() + static_cast<std::ptrdiff_t>(start),
                                         inputs.begin() + static_cast<std::ptrdiff_t>(std::min(inputs.size(), start + chunk)));
        for (auto& r : run_batch(group, times)) found.push_back(std::move(r));
    }
    const auto begin = std::chrono::steady_clock::now();
    // as SAHI's models do (and Python): a box starts no earlier than its own input's edge, then,
    // shifted, it is clamped to the image, and boxes of no area are dropped
    std::vector<double> boxes, scores;
    std::vector<std::int64_t> classes;
    for (size_t i = 0; i < found.size(); ++i) {
        const double x = i < windows.size() ? windows[i].x1 : 0, y = i < windows.size() ? windows[i].y1 : 0;
        for (const Detection& d : found[i]) {
            const double b[4] = {
                std::clamp(std::max(static_cast<double>(d.x1), 0.0) + x, 0.0, static_cast<double>(bgr.cols)),
                std::clamp(std::max(static_cast<double>(d.y1), 0.0) + y, 0.0, static_cast<double>(bgr.rows)),
                std::clamp(std::max(static_cast<double>(d.x2), 0.0) + x, 0.0, static_cast<double>(bgr.cols)),
                std::clamp(std::max(static_cast<double>(d.y2), 0.0) + y, 0.0, static_cast<double>(bgr.rows))};
            if (!(b[0] < b[2] && b[1] < b[3])) continue;
            boxes.insert(boxes.end(), b, b + 4);
            scores.push_back(static_cast<double>(d.score));
            classes.push_back(d.class_id);
        }
    }
    std::vector<core::Merged> merged;
    if (found.size() > 1 && scores.size() > 1) {
        const bool low = info.conf < kLowConf && s.merge != "nms" && !s.force_merge;
        const auto kind = low || s.merge == "nms" ? core::MergeKind::nms : core::MergeKind::greedy_nmm;
        const auto match = low || s.match == "iou" ? core::MatchKind::iou : core::MatchKind::ios;
        try {
            merged = core::merge_detections(boxes.data(), scores.data(), classes.data(),
                                            static_cast<std::int64_t>(scores.size()), kind, match, s.match_threshold,
                                            s.class_agnostic, s.recheck == "sahi");
        } catch (const std::invalid_argument& e) {
            throw ModelFileError(fs::path(info.path).filename().string() + ": " + e.what());
        }
    } else {
        for (size_t i = 0; i < scores.size(); ++i)
            merged.push_back(core::Merged{boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3], scores[i],
                                          classes[i]});
    }
    std::stable_sort(merged.begin(), merged.end(), [](const core::Merged& a, const core::Merged& b) {
        return a.score > b.score;
    });
    const std::vector<std::string>& names =
        info.class_names.empty() ? detail::default_class_names(80) : info.class_names;
    std::vector<Detection> out;
    out.reserve(merged.size());
    for (const auto& m : merged) {
        const size_t id = static_cast<size_t>(m.class_id);
        out.push_back(Detection{static_cast<float>(m.x1), static_cast<float>(m.y1), static_cast<float>(m.x2),
                                static_cast<float>(m.y2), static_cast<float>(m.score), static_cast<int>(m.class_id),
                                id < names.size() ? names[id] : "class" + std::to_string(id)});
    }
    if (times) times->postprocess_ms += elapsed_ms(begin);
    return out;
}

std::pair<std::vector<float>, double> Detector::letterbox(const cv::Mat& image) const {
    return detail::translated("letterboxing", [&] {
        const cv::Mat bgr = as_bgr(image);
        const auto [h, w] = impl_->info.input_size;
        std::vector<float> tensor(static_cast<size_t>(3) * h * w);
        const double ratio = core::letterbox_to_chw(view_of(bgr), h, w, tensor.data(), letterbox_threads()).ratio;
        return std::make_pair(std::move(tensor), ratio);
    });
}

std::vector<std::string> compiled_backends() {
    std::vector<std::string> names;
    for (const auto& entry : detail::backend_entries())
        if (entry.open != nullptr) names.emplace_back(entry.name);
    return names;
}

const char* core_sources_sha256() { return core::sources_sha256(); }

const char* version() { return YOLOX_DEPLOY_VERSION; }

}  // namespace yolox_deploy
