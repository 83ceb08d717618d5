// OpenVINO (C++ API 2024+), CPU device. The inference precision is always stated to the plugin
// (INFERENCE_PRECISION_HINT f32 unless bf16 is asked), as the Python backend does: the CPU
// plugin's own default is bf16 on CPUs with bf16 units.
#include <openvino/openvino.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <type_traits>

#include "../backend.hpp"
#include "yolox_deploy/detector.hpp"

namespace yolox_deploy::detail {
namespace {

const char* const kRtInfoSection = "yolox_deploy";  // where our exporters keep the model metadata
const std::vector<std::string> kMetadataKeys = {"model_name", "input_size", "strides", "class_names",
                                                "output_layout", "sdk_version", "precision", "quantization",
                                                "defaults", "end_to_end"};
const std::vector<std::string> kEndToEndOutputs = {"num_dets", "boxes", "scores", "class_ids"};
// Idle InferRequests kept for the next calls (each holds its own input/output buffers).
constexpr size_t kMaxIdleRequests = 4;

std::string file_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool has_suffix(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ov::element::Type element_type_of(const std::string& precision) {
    if (precision == "fp32") return ov::element::f32;
    if (precision == "bf16") return ov::element::bf16;
    if (precision == "fp16") return ov::element::f16;
    throw BackendUnavailableError("openvino precision must be fp32, bf16 or fp16, got '" + precision + "'");
}

class OpenVinoBackend final : public Backend {
   public:
    OpenVinoBackend(const std::string& path, const BackendOptions& options) : name_(file_name(path)) {
        if (has_suffix(path, ".xml")) {
            const std::string weights = path.substr(0, path.size() - 4) + ".bin";
            if (FILE* f = std::fopen(weights.c_str(), "rb")) {
                std::fclose(f);
            } else {
                throw ModelFileError(name_ + " has no weights file: expected " + file_name(weights) + " beside it");
            }
        }
        std::shared_ptr<ov::Model> model;
        try {
            model = core_.read_model(path);
        } catch (const std::exception& e) {
            throw ModelFileError(name_ + " is not a loadable OpenVINO model (" + first_line(e.what()) + ")");
        }
        read_signature(*model);
        read_metadata(*model);
        const ov::element::Type precision = element_type_of(options.precision);
        if (precision != ov::element::f32) check_device_supports(precision);
        ov::AnyMap config = {ov::hint::inference_precision(precision),
                             ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
        if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
        // uint8 NHWC pixels in, converted by OpenVINO's PrePostProcessor (as the Python backend does;
        // bit-identical outputs); where that compile fails, the float model
        try {
            compiled_ = core_.compile_model(with_pixel_input(model), "CPU", config);
            pixels_ = true;
        } catch (const std::exception&) {
            pixels_ = false;
        }
        if (!pixels_) {
            try {
                compiled_ = core_.compile_model(model, "CPU", config);
            } catch (const std::exception& e) {
                throw BackendUnavailableError("OpenVINO could not compile " + name_ + " for the CPU (" +
                                              first_line(e.what()) + ")");
            }
        }
        const ov::element::Type got = compiled_.get_property(ov::hint::inference_precision);
        if (got != precision)
            throw BackendUnavailableError("OpenVINO compiled " + name_ + " for " + got.get_type_name() +
                                          " arithmetic although " + precision.get_type_name() +
                                          " was asked for; use precision fp32");
        precision_ = options.precision;
    }

    std::array<std::int64_t, 4> input_shape() const override { return input_shape_; }
    bool end_to_end() const override { return end_to_end_; }
    std::map<std::string, std::string> metadata() const override { return metadata_; }
    std::string precision() const override { return precision_; }

    bool takes_pixels() const override { return pixels_; }

    BackendOutput infer(const float* batch, std::int64_t n, std::int64_t height, std::int64_t width) const override {
        if (pixels_) throw std::logic_error("this OpenVINO model was compiled for uint8 pixels");
        const ov::Shape shape = {static_cast<size_t>(n), 3, static_cast<size_t>(height), static_cast<size_t>(width)};
        return run(ov::Tensor(ov::element::f32, shape, const_cast<float*>(batch)), n, height, width);
    }

    BackendOutput infer_pixels(const std::uint8_t* pixels, std::int64_t n, std::int64_t height,
                               std::int64_t width) const override {
        const ov::Shape shape = {static_cast<size_t>(n), static_cast<size_t>(height), static_cast<size_t>(width), 3};
        return run(ov::Tensor(ov::element::u8, shape, const_cast<std::uint8_t*>(pixels)), n, height, width);
    }

   private:
    static std::shared_ptr<ov::Model> with_pixel_input(const std::shared_ptr<ov::Model>& model) {
        ov::preprocess::PrePostProcessor ppp(model->clone());
        ppp.input().tensor().set_element_type(ov::element::u8).set_layout(ov::Layout("NHWC"));
        ppp.input().model().set_layout(ov::Layout("NCHW"));
        return ppp.build();
    }

    BackendOutput run(const ov::Tensor& input, std::int64_t n, std::int64_t height, std::int64_t width) const {
        Lease lease(*this);
        try {
            lease.request.set_input_tensor(input);
            lease.request.infer();
            return end_to_end_ ? end_to_end_output(lease.request, n) : raw_output(lease.request.get_output_tensor(0), n);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw ModelFileError("OpenVINO could not run " + name_ + " on a batch of " + std::to_string(n) + " " +
                                 std::to_string(height) + "x" + std::to_string(width) + " (" + first_line(e.what()) +
                                 ")");
        }
    }

    // An idle InferRequest for one call (created on demand, returned to the pool afterwards): one
    // request is not re-entrant, the compiled model is.
    struct Lease {
        explicit Lease(const OpenVinoBackend& owner) : owner(owner) {
            std::lock_guard<std::mutex> lock(owner.pool_mutex_);
            if (owner.idle_.empty()) {
                request = owner.compiled_.create_infer_request();
            } else {
                request = std::move(owner.idle_.back());
                owner.idle_.pop_back();
            }
        }
        ~Lease() {
            std::lock_guard<std::mutex> lock(owner.pool_mutex_);
            // requests beyond what a burst of threads needed once are dropped, not kept for good
            if (owner.idle_.size() < kMaxIdleRequests) owner.idle_.push_back(std::move(request));
        }
        const OpenVinoBackend& owner;
        ov::InferRequest request;
    };

    void check_device_supports(const ov::element::Type& precision) {
        const auto capabilities = core_.get_property("CPU", ov::device::capabilities);
        const bool bf16 = precision == ov::element::bf16;
        const std::string needed = bf16 ? ov::device::capability::BF16 : ov::device::capability::FP16;
        if (std::find(capabilities.begin(), capabilities.end(), needed) == capabilities.end())
            throw BackendUnavailableError(
                std::string("precision '") + (bf16 ? "bf16" : "fp16") + "' needs " + needed +
                " support, which OpenVINO's CPU plugin does not list here (a CPU needs " +
                (bf16 ? "avx512_bf16 or AMX" : "avx512_fp16 or AMX-FP16 (x86), or FP16 arithmetic (ARM)") +
                "); use precision fp32");
    }

    void read_signature(const ov::Model& model) {
        std::set<std::string> names;
        for (const auto& output : model.outputs()) names.insert(output.get_any_name());
        end_to_end_ = names == std::set<std::string>(kEndToEndOutputs.begin(), kEndToEndOutputs.end());
        const auto& inputs = model.inputs();
        if (inputs.size() != 1 || inputs[0].get_partial_shape().rank().is_dynamic() ||
            inputs[0].get_partial_shape().rank().get_length() != 4 || (model.outputs().size() != 1 && !end_to_end_))
            throw ModelFileError(name_ + " is not a YOLOX detector: expected one [B, 3, H, W] input and one "
                                         "[B, N, 5+C] output (or the end-to-end num_dets, boxes, scores, class_ids)");
        const ov::PartialShape shape = inputs[0].get_partial_shape();
        for (size_t i = 0; i < 4; ++i) input_shape_[i] = shape[i].is_static() ? shape[i].get_length() : -1;
        if (input_shape_[1] != -1 && input_shape_[1] != 3)
            throw ModelFileError(name_ + " is not a YOLOX detector: its input has " + std::to_string(input_shape_[1]) +
                                 " channels, not 3");
    }

    void read_metadata(const ov::Model& model) {
        for (const std::string& key : kMetadataKeys)
            if (model.has_rt_info(kRtInfoSection, key))
                metadata_[key] = model.get_rt_info<std::string>(kRtInfoSection, key);
    }

    BackendOutput raw_output(const ov::Tensor& tensor, std::int64_t n) const {
        const ov::Shape shape = tensor.get_shape();
        if (tensor.get_element_type() != ov::element::f32 || shape.size() != 3 ||
            static_cast<std::int64_t>(shape[0]) != n)
            throw ModelFileError(name_ + " returned an output that is not float32 [" + std::to_string(n) +
                                 ", N, 5+C]");
        BackendOutput out;
        out.batch = n, out.anchors = static_cast<std::int64_t>(shape[1]), out.columns = static_cast<std::int64_t>(shape[2]);
        const float* data = tensor.data<const float>();
        out.raw.assign(data, data + tensor.get_size());
        return out;
    }

    // An end-to-end output as float (boxes, scores) or int32 (counts, class ids, range-checked).
    template <typename T>
    std::vector<T> as_vector(const ov::Tensor& tensor) const {
        std::vector<T> out(tensor.get_size());
        auto convert = [&](const auto* data) {
            for (size_t i = 0; i < out.size(); ++i)
                out[i] = std::is_same_v<T, float> ? static_cast<T>(data[i])
                                                  : static_cast<T>(checked_int32(static_cast<double>(data[i]), name_));
        };
        const auto type = tensor.get_element_type();
        if (type == ov::element::f32) convert(tensor.data<const float>());
        else if (type == ov::element::i32) convert(tensor.data<const std::int32_t>());
        else if (type == ov::element::i64) convert(tensor.data<const std::int64_t>());
        else throw ModelFileError(name_ + ": an end-to-end output has an element type that is not f32, i32 or i64");
        return out;
    }

    BackendOutput end_to_end_output(ov::InferRequest& request, std::int64_t n) const {
        BackendOutput out;
        out.end_to_end = true;
        out.batch = n;
        const ov::Tensor boxes = request.get_tensor(kEndToEndOutputs[1]);
        out.num_dets = as_vector<std::int32_t>(request.get_tensor(kEndToEndOutputs[0]));
        out.boxes = as_vector<float>(boxes);
        out.scores = as_vector<float>(request.get_tensor(kEndToEndOutputs[2]));
        out.class_ids = as_vector<std::int32_t>(request.get_tensor(kEndToEndOutputs[3]));
        const ov::Shape box_shape = boxes.get_shape();
        check_end_to_end(out, std::vector<std::int64_t>(box_shape.begin(), box_shape.end()), n, name_);
        return out;
    }

    std::string name_;
    ov::Core core_;
    mutable ov::CompiledModel compiled_;  // create_infer_request is not const; guarded by pool_mutex_
    std::array<std::int64_t, 4> input_shape_{};
    bool end_to_end_ = false;
    std::map<std::string, std::string> metadata_;
    std::string precision_;
    bool pixels_ = false;  // compiled for uint8 NHWC pixels
    mutable std::mutex pool_mutex_;
    mutable std::vector<ov::InferRequest> idle_;
};

}  // namespace

std::unique_ptr<Backend> open_openvino(const std::string& path, const BackendOptions& options) {
    try {
        return std::make_unique<OpenVinoBackend>(path, options);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {  // ov::Exception from reading the model's signature or rt_info
        throw ModelFileError(file_name(path) + " cannot be used by OpenVINO (" + first_line(e.what()) + ")");
    }
}

}  // namespace yolox_deploy::detail
