// ONNX Runtime (C/C++ API), CPU execution provider, FP32 stated as the Python backend states it.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <type_traits>
#include <sstream>

#include "../backend.hpp"
#include "../onnx_pixels.hpp"
#include "yolox_deploy/detector.hpp"

namespace yolox_deploy::detail {
namespace {

const std::vector<std::string> kEndToEndOutputs = {"num_dets", "boxes", "scores", "class_ids"};

// One environment per process (ONNX Runtime's rule). Fatal messages only: every error reaches the
// caller as an exception (one line), so the log would only repeat it on stderr.
Ort::Env& environment() {
    static Ort::Env env(ORT_LOGGING_LEVEL_FATAL, "yolox_deploy");
    return env;
}

// ONNX Runtime's message as a user can act on it: its first line, without "Load model from PATH
// failed:" and without the locations in its own sources (file.cc:123, onnxruntime::Fn(...)).
std::string runtime_reason(const char* what) {
    std::string reason = first_line(what);
    const size_t failed = reason.find(" failed:");
    if (reason.rfind("Load model from ", 0) == 0 && failed != std::string::npos) reason = reason.substr(failed + 8);
    reason = std::regex_replace(reason, std::regex(R"((\S*/)?[\w.-]+\.(cc|cpp|h):\d+\s*)"), "");
    reason = std::regex_replace(reason, std::regex(R"((onnxruntime|onnx)::[\w:<>~]+\([^)]*\)\s*)"), "");
    reason = first_line(reason);
    return reason == "no message" ? "ONNX Runtime gave no reason" : reason;
}

std::string file_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

class OnnxRuntimeBackend final : public Backend {
   public:
    OnnxRuntimeBackend(const std::string& path, const BackendOptions& options) : name_(file_name(path)) {
        if (options.precision != "fp32")
            throw BackendUnavailableError("onnxruntime computes in fp32 on the CPU (asked precision '" +
                                          options.precision + "'); use precision fp32, or an fp16/int8 model file");
        Ort::SessionOptions session_options;
        // FP32 stated, never left to a default: the one switch that lowers it (bf16 GEMMs on ARM64) is off
        session_options.AddConfigEntry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0");
        // intra-op threads stop spinning when a run returns (as the Python backend does by default), unless
        // the deployment was tuned and measured with them spinning
        if (!options.spinning) session_options.AddConfigEntry("session.force_spinning_stop", "1");
        if (options.threads > 0) session_options.SetIntraOpNumThreads(options.threads);
        try {
            session_ = std::make_unique<Ort::Session>(environment(), path.c_str(), session_options);
        } catch (const Ort::Exception& e) {
            throw ModelFileError(name_ + " is not a loadable ONNX model (" + runtime_reason(e.what()) +
                                 "); pass an .onnx from yolox-export, an OpenVINO .xml or a yolox-tune folder");
        }
        read_signature();
        read_metadata();
        open_pixel_session(path, session_options);
        // the float session is only needed where the pixel session could not be made (as in Python): two
        // sessions would hold two copies of the weights and two thread pools
        if (pixel_session_) session_.reset();
    }

    bool takes_pixels() const override { return pixel_session_ != nullptr; }

    BackendOutput infer_pixels(const std::uint8_t* pixels, std::int64_t n, std::int64_t height,
                               std::int64_t width) const override {
        return guarded(n, height, width, [&] {
            const std::array<std::int64_t, 4> shape = {n, height, width, 3};
            const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
            Ort::Value input = Ort::Value::CreateTensor<std::uint8_t>(memory, const_cast<std::uint8_t*>(pixels),
                                                                      static_cast<size_t>(n * height * width * 3),
                                                                      shape.data(), shape.size());
            return run(*pixel_session_, kPixelInput, input, n);
        });
    }

    std::array<std::int64_t, 4> input_shape() const override { return input_shape_; }
    bool end_to_end() const override { return end_to_end_; }
    std::map<std::string, std::string> metadata() const override { return metadata_; }
    std::string precision() const override { return "fp32"; }

    BackendOutput infer(const float* batch, std::int64_t n, std::int64_t height, std::int64_t width) const override {
        return guarded(n, height, width, [&] {
            const std::array<std::int64_t, 4> shape = {n, 3, height, width};
            const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
            Ort::Value input = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(batch),
                                                               static_cast<size_t>(n * 3 * height * width),
                                                               shape.data(), shape.size());
            return run(*session_, input_name_.c_str(), input, n);
        });
    }

   private:
    // Every ONNX Runtime call of one inference inside one try: its exceptions become one-line ModelFileErrors.
    template <typename Call>
    BackendOutput guarded(std::int64_t n, std::int64_t height, std::int64_t width, Call&& call) const {
        try {
            return call();
        } catch (const Ort::Exception& e) {
            throw ModelFileError("onnxruntime could not run " + name_ + " on a batch of " + std::to_string(n) + " " +
                                 std::to_string(height) + "x" + std::to_string(width) + " (" + runtime_reason(e.what()) +
                                 ")");
        }
    }

    BackendOutput run(Ort::Session& session, const char* input_name, const Ort::Value& input, std::int64_t n) const {
        std::vector<const char*> output_names;
        for (const std::string& name : output_names_) output_names.push_back(name.c_str());
        std::vector<Ort::Value> outputs = session.Run(Ort::RunOptions{nullptr}, &input_name, &input, 1,
                                                      output_names.data(), output_names.size());
        if (end_to_end_) return end_to_end_output(outputs, n);
        // the raw output is read where ONNX Runtime wrote it (no copy): the result keeps it alive
        auto owned = std::make_shared<std::vector<Ort::Value>>(std::move(outputs));
        BackendOutput out = raw_output((*owned)[0], n);
        out.owner = owned;
        return out;
    }

    // A second session on the graph with a uint8 pixel input; where the edit does not apply (e.g.
    // weights in external files) the float session is used, as in Python.
    void open_pixel_session(const std::string& path, const Ort::SessionOptions& options) {
        try {
            std::ifstream in(path, std::ios::binary);
            std::stringstream bytes;
            bytes << in.rdbuf();
            const std::vector<std::int64_t> dims(input_shape_.begin(), input_shape_.end());
            const std::string model = with_pixel_input(bytes.str(), input_name_, dims);
            auto session = std::make_unique<Ort::Session>(environment(), model.data(), model.size(), options);
            Ort::AllocatorWithDefaultOptions allocator;
            if (session->GetInputCount() == 1 &&
                std::string(session->GetInputNameAllocated(0, allocator).get()) == kPixelInput)
                pixel_session_ = std::move(session);
        } catch (const std::exception&) {  // anything: the float session is there and correct
            pixel_session_.reset();
        }
    }

    void read_signature() {
        Ort::AllocatorWithDefaultOptions allocator;
        if (session_->GetInputCount() != 1) throw not_a_detector(std::to_string(session_->GetInputCount()) + " inputs");
        input_name_ = session_->GetInputNameAllocated(0, allocator).get();
        const Ort::TypeInfo input_type = session_->GetInputTypeInfo(0);  // owns what the shape info views
        // a sequence, map or optional input has no tensor info (ONNX Runtime returns null, not an error)
        if (input_type.GetONNXType() != ONNX_TYPE_TENSOR) throw not_a_detector(input_name_ + " (not a tensor)");
        const auto input_info = input_type.GetTensorTypeAndShapeInfo();
        const std::vector<std::int64_t> dims = input_info.GetShape();
        if (dims.size() != 4 || (dims[1] > 0 && dims[1] != 3)) {
            std::string shape;
            for (const std::int64_t d : dims) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
            throw not_a_detector(input_name_ + " [" + shape + "]");
        }
        if (input_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
            throw ModelFileError(name_ + " takes a non-float input; yolox_deploy feeds float32 [B, 3, H, W] "
                                         "(export with yolox-export)");
        for (size_t i = 0; i < 4; ++i) input_shape_[i] = dims[i] > 0 ? dims[i] : -1;
        for (size_t i = 0; i < session_->GetOutputCount(); ++i) {
            output_names_.push_back(session_->GetOutputNameAllocated(i, allocator).get());
            if (session_->GetOutputTypeInfo(i).GetONNXType() != ONNX_TYPE_TENSOR)
                throw ModelFileError(name_ + " is not a YOLOX export: its output " + output_names_.back() +
                                     " is not a tensor");
        }
        const std::set<std::string> names(output_names_.begin(), output_names_.end());
        end_to_end_ = names == std::set<std::string>(kEndToEndOutputs.begin(), kEndToEndOutputs.end());
        if (end_to_end_) {
            output_names_ = kEndToEndOutputs;  // asked for in layout order
        } else if (output_names_.size() != 1 || output_rank(0) != 3) {
            throw ModelFileError(name_ + " is not a YOLOX export: expected one output [B, N, 5+C] or the end-to-end "
                                         "num_dets, boxes, scores, class_ids");
        }
    }

    size_t output_rank(size_t index) const {
        const Ort::TypeInfo type = session_->GetOutputTypeInfo(index);
        return type.GetTensorTypeAndShapeInfo().GetShape().size();
    }

    ModelFileError not_a_detector(const std::string& found) const {
        return ModelFileError(name_ + " is not a YOLOX detector: expected one input [B, 3, H, W], found " + found);
    }

    void read_metadata() {
        Ort::AllocatorWithDefaultOptions allocator;
        const Ort::ModelMetadata meta = session_->GetModelMetadata();
        for (const auto& key : meta.GetCustomMetadataMapKeysAllocated(allocator)) {
            const auto value = meta.LookupCustomMetadataMapAllocated(key.get(), allocator);
            if (value) metadata_[key.get()] = value.get();
        }
    }

    BackendOutput raw_output(const Ort::Value& value, std::int64_t n) const {
        const auto info = value.GetTensorTypeAndShapeInfo();
        const std::vector<std::int64_t> shape = info.GetShape();
        if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape.size() != 3 || shape[0] != n)
            throw ModelFileError(name_ + " returned an output that is not float32 [" + std::to_string(n) +
                                 ", N, 5+C]");
        BackendOutput out;
        out.batch = shape[0], out.anchors = shape[1], out.columns = shape[2];
        out.borrowed = value.GetTensorData<float>();
        return out;
    }

    // An end-to-end output as float (boxes, scores) or int32 (counts, class ids, range-checked).
    template <typename T>
    std::vector<T> as_vector(const Ort::Value& value) const {
        const auto info = value.GetTensorTypeAndShapeInfo();
        const size_t count = info.GetElementCount();
        std::vector<T> out(count);
        auto convert = [&](const auto* data) {
            for (size_t i = 0; i < count; ++i)
                out[i] = std::is_same_v<T, float> ? static_cast<T>(data[i])
                                                  : static_cast<T>(checked_int32(static_cast<double>(data[i]), name_));
        };
        switch (info.GetElementType()) {
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: convert(value.GetTensorData<float>()); break;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: convert(value.GetTensorData<std::int32_t>()); break;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: convert(value.GetTensorData<std::int64_t>()); break;
            default: throw ModelFileError(name_ + ": an end-to-end output has an element type that is not float, "
                                                  "int32 or int64");
        }
        return out;
    }

    BackendOutput end_to_end_output(const std::vector<Ort::Value>& values, std::int64_t n) const {
        BackendOutput out;
        out.end_to_end = true;
        out.batch = n;
        out.num_dets = as_vector<std::int32_t>(values[0]);
        out.boxes = as_vector<float>(values[1]);
        out.scores = as_vector<float>(values[2]);
        out.class_ids = as_vector<std::int32_t>(values[3]);
        const auto box_shape = values[1].GetTensorTypeAndShapeInfo().GetShape();
        check_end_to_end(out, box_shape, n, name_);
        return out;
    }

    std::string name_;
    std::unique_ptr<Ort::Session> session_;
    std::unique_ptr<Ort::Session> pixel_session_;  // null: float batches only
    std::string input_name_;
    std::vector<std::string> output_names_;
    std::array<std::int64_t, 4> input_shape_{};
    bool end_to_end_ = false;
    std::map<std::string, std::string> metadata_;
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const BackendOptions& options) {
    try {
        return std::make_unique<OnnxRuntimeBackend>(path, options);
    } catch (const Ort::Exception& e) {  // from reading the signature or metadata of a loaded model
        throw ModelFileError(file_name(path) + " cannot be used by onnxruntime (" + runtime_reason(e.what()) + ")");
    }
}

}  // namespace yolox_deploy::detail
