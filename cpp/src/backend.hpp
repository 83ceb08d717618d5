// The interface every backend implements: one file in src/backends/ each, registered in
// backends.cpp. A backend opens a model file, says what it takes and gives, and runs float32
// NCHW batches; it is re-entrant (infer may run on several threads at once).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace yolox_deploy::detail {

struct BackendOptions {
    int threads = 0;            // 0: the runtime's default
    std::string precision = "fp32";  // the arithmetic to state to the runtime
    bool spinning = false;      // ONNX Runtime: intra-op threads keep spinning between runs
};

// What one backend call returns: the raw head [B, N, 5 + C], or an end-to-end model's detections.
struct BackendOutput {
    std::vector<float> raw;  // a copy, or empty when `borrowed` points into memory `owner` keeps alive
    const float* borrowed = nullptr;
    std::shared_ptr<void> owner;
    const float* raw_data() const { return borrowed != nullptr ? borrowed : raw.data(); }
    std::int64_t batch = 0, anchors = 0, columns = 0;
    bool end_to_end = false;
    std::vector<std::int32_t> num_dets;  // [B]
    std::vector<float> boxes;            // [B, M, 4] xyxy, letterboxed-input pixels
    std::vector<float> scores;           // [B, M]
    std::vector<std::int32_t> class_ids;  // [B, M]
    std::int64_t max_dets = 0;            // M
};

class Backend {
   public:
    virtual ~Backend() = default;
    // [B, 3, H, W]; -1 where the dimension is dynamic
    virtual std::array<std::int64_t, 4> input_shape() const = 0;
    virtual bool end_to_end() const = 0;
    // The exporters' metadata (ONNX metadata_props, OpenVINO rt_info "yolox_deploy"): key -> JSON text
    virtual std::map<std::string, std::string> metadata() const = 0;
    // The precision the runtime reports it computes in ("fp32", "bf16" ...)
    virtual std::string precision() const = 0;
    virtual BackendOutput infer(const float* batch, std::int64_t n, std::int64_t height,
                                std::int64_t width) const = 0;
    // Whether the runtime takes uint8 [B, H, W, 3] letterboxed pixels and converts them itself (as
    // the Python backends do: ONNX Runtime through a Cast + Transpose in the graph, OpenVINO
    // through its PrePostProcessor; bit-identical outputs).
    virtual bool takes_pixels() const { return false; }
    virtual BackendOutput infer_pixels(const std::uint8_t* /*pixels*/, std::int64_t /*n*/, std::int64_t /*height*/,
                                       std::int64_t /*width*/) const {
        throw std::logic_error("this backend takes float batches");
    }
};

using BackendFactory = std::unique_ptr<Backend> (*)(const std::string& path, const BackendOptions& options);

struct BackendEntry {
    const char* name;
    std::vector<std::string> suffixes;  // model files it opens by default (".onnx")
    const char* cmake_option;           // how to compile it in
    BackendFactory open;                // null when not compiled into this build
};

// Every backend this library knows, compiled in or not.
const std::vector<BackendEntry>& backend_entries();

// Sets out.max_dets from the boxes' shape [B, M, 4] and checks every end-to-end output's shape and
// num_dets (in 0..M); a one-line ModelFileError naming `model` otherwise.
void check_end_to_end(BackendOutput& out, const std::vector<std::int64_t>& box_shape, std::int64_t batch,
                      const std::string& model);

// An end-to-end output's count or class id as int32: a value outside int32 (or NaN) is a
// ModelFileError naming `model`, never an undefined conversion.
std::int32_t checked_int32(double value, const std::string& model);

// The first line of a runtime's (often multi-line) error message.
std::string first_line(const std::string& text);

}  // namespace yolox_deploy::detail
