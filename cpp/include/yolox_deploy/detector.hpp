// yolox_deploy::Detector: a YOLOX model (an ONNX file, an OpenVINO IR or a yolox-tune deployment
// folder) behind ONNX Runtime or OpenVINO, with the Python package's letterbox and postprocess
// (the same C++ sources, cpp/core), so that its answers are Python's.
//
//   yolox_deploy::Detector detector("yolox_nano.onnx");
//   for (const auto& d : detector.detect(cv::imread("dog.jpg")))
//       std::cout << d.class_name << " " << d.score << "\n";
//
// Thread safety: detect() is const and may be called from several threads at once on one
// Detector (each call has its own buffers; ONNX Runtime sessions are re-entrant, OpenVINO
// requests come from a pool). Construction, moves and destruction are not concurrent-safe.
// Where the runtime takes float tensors, each call letterboxes on up to 2 threads (bands of rows;
// the same bytes as one thread).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

// What the shared library exports (everything else in it is hidden).
#if defined(YOLOX_DEPLOY_STATIC)
#define YOLOX_DEPLOY_API
#else
#define YOLOX_DEPLOY_API __attribute__((visibility("default")))
#endif

namespace yolox_deploy {

// Every error is one of these, with a one-line message naming the problem and the fix.
class YOLOX_DEPLOY_API Error : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};
class YOLOX_DEPLOY_API InvalidInputError : public Error {  // bad image, bad setting, input size not a multiple of 32
   public:
    using Error::Error;
};
class YOLOX_DEPLOY_API ModelFileError : public Error {  // not a YOLOX model, unreadable, bad deploy.json
   public:
    using Error::Error;
};
class YOLOX_DEPLOY_API BackendUnavailableError : public Error {  // backend not compiled in, device or precision not available
   public:
    using Error::Error;
};

// One detection; the box is xyxy in pixels of the original image given to detect().
struct Detection {
    float x1, y1, x2, y2;
    float score;  // objectness x class score
    int class_id;
    std::string class_name;
};

struct DetectorOptions {
    std::string backend;    // "onnxruntime" or "openvino"; empty: the deployment's, else from the file suffix
    int threads = 0;        // inference threads; 0: the deployment's, else the runtime's default
    std::string precision;  // arithmetic: "fp32" (stated to the runtime, the default); OpenVINO also "bf16", "fp16"
    std::optional<float> conf;  // minimum score; default: deployment, then model metadata, then 0.25
    std::optional<float> iou;   // NMS IoU threshold; default: deployment, then model metadata, then 0.45
    std::optional<int> max_det;  // detections kept per image, -1 for all; default as above, else 300
    std::optional<bool> class_agnostic;  // NMS across classes; default: deployment, else the graph's, else false
    std::optional<std::pair<int, int>> input_size;  // (height, width) for models with dynamic spatial dims
    int batch_size = 0;  // images per backend call for dynamic-batch models, <= 4096; 0: the deployment's, else 1
    bool clip_boxes = true;  // clip boxes to the image
    // names of the model's classes, replacing its metadata's (needed for a model with more than 80
    // classes and no metadata); empty: the metadata's, else COCO's for 80 classes, else class0, class1 ...
    std::vector<std::string> class_names;
};

// The thresholds detect() applies; Detector::set_thresholds changes them without reloading the model.
struct Thresholds {
    float conf = 0.25f;  // minimum score, in [0, 1]
    float iou = 0.45f;   // NMS IoU threshold, in [0, 1]
    int max_det = 300;   // detections kept per image, -1 for all
    bool class_agnostic = false;  // NMS across classes
};

// Sliced inference (small objects on large images), as the Python package's SliceSettings
// (docs/sliced.md): overlapping windows of `height` x `width` original-image pixels (multiples of
// 32), plus the whole image, each detected at the Detector's thresholds (conf and max_det apply
// per window), then merged.
struct SliceSettings {
    int height = 640, width = 640;
    double overlap = 0.2;         // of neighbouring windows, as a fraction of the size, in [0, 1)
    bool full_image = true;       // also detect on the whole image (when it needs more than one window)
    std::string merge = "greedy_nmm";  // "greedy_nmm" (SAHI's GREEDYNMM: matched boxes merged into their union) or "nms"
    std::string match = "ios";    // "ios" (intersection over the smaller box) or "iou"
    double match_threshold = 0.5;
    bool class_agnostic = false;  // merge across classes
    std::string recheck = "sahi";  // "sahi" (an absorbed box that no longer matches the grown box is dropped) or "none"
    bool force_merge = false;     // keep merge/match below conf 0.1 (else NMS/IoU there, as SAHI does)
};

inline constexpr int kMaxBatchSize = 4096;
// read_image's default limit on the pixels an image header may declare (YOLOX_DEPLOY_MAX_IMAGE_PIXELS overrides it)
inline constexpr std::int64_t kDefaultMaxImagePixels = 100000000;

// What the model and its metadata say (after options and deploy.json are applied).
struct ModelInfo {
    std::string path;     // the model file
    std::string backend;  // the backend running it
    std::string precision;  // the arithmetic asked of the runtime ("fp32", "bf16")
    std::pair<int, int> input_size;  // (height, width)
    std::vector<int> strides;
    std::vector<std::string> class_names;  // empty until known (no metadata and no detect() yet)
    bool end_to_end = false;  // NMS inside the graph (yolox-export --nms)
    bool pixel_input = false;  // the runtime takes uint8 pixels and converts them itself
    int batch_size = 1;
    int threads = 0;
    float conf = 0.25f, iou = 0.45f;
    int max_det = 300;
    bool class_agnostic = false;
    bool clip_boxes = true;
    std::string deployment;  // the deployment folder, when one was opened
};

// Milliseconds spent per stage, summed over calls (for benchmarks).
struct StageTimes {
    double preprocess_ms = 0;   // checks, colour conversion, letterbox
    double inference_ms = 0;    // the backend call
    double postprocess_ms = 0;  // decode, score filter, NMS, mapping back
};

class YOLOX_DEPLOY_API Detector {
   public:
    // `model`: an .onnx file, an OpenVINO .xml (with its .bin), or a yolox-tune deployment folder.
    explicit Detector(const std::string& model, const DetectorOptions& options = {});
    ~Detector();
    Detector(Detector&&) noexcept;
    Detector& operator=(Detector&&) noexcept;
    Detector(const Detector&) = delete;
    Detector& operator=(const Detector&) = delete;

    // One BGR (CV_8UC3), gray (CV_8UC1) or BGRA (CV_8UC4) image; detections sorted by score.
    // `times`, when given, accumulates the time of each stage.
    std::vector<Detection> detect(const cv::Mat& image, StageTimes* times = nullptr) const;
    // Several images, in backend batches of info().batch_size; one result per image, in order.
    std::vector<std::vector<Detection>> detect(const std::vector<cv::Mat>& images, StageTimes* times = nullptr) const;

    // Sliced inference on one image (SliceSettings); detections in its pixels, sorted by score.
    // InvalidInputError for settings outside their ranges or more than 4096 windows.
    std::vector<Detection> detect_sliced(const cv::Mat& image, const SliceSettings& slices,
                                         StageTimes* times = nullptr) const;

    // The letterboxed network input of one image: float32 [3, H, W] BGR 0-255 (H, W = input_size),
    // and the ratio (input pixels per image pixel).
    std::pair<std::vector<float>, double> letterbox(const cv::Mat& image) const;

    const ModelInfo& info() const;

    Thresholds thresholds() const;
    // Checked as at construction (InvalidInputError; an end-to-end graph refuses what it cannot honour).
    // Not safe while another thread is in detect() on this Detector.
    void set_thresholds(const Thresholds& thresholds);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Reads an image file as BGR uint8 with the Python package's checks (missing, empty, truncated,
// undecodable, a header declaring more than `max_pixels` pixels; 0: kDefaultMaxImagePixels or
// YOLOX_DEPLOY_MAX_IMAGE_PIXELS), throwing InvalidInputError with one line.
YOLOX_DEPLOY_API cv::Mat read_image(const std::string& path, std::int64_t max_pixels = 0);

// The backends compiled into this build.
YOLOX_DEPLOY_API std::vector<std::string> compiled_backends();

// SHA-256 of the cpp/core sources this library was compiled from (the Python module reports its own).
YOLOX_DEPLOY_API const char* core_sources_sha256();

YOLOX_DEPLOY_API const char* version();

}  // namespace yolox_deploy
