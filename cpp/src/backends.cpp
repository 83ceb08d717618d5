// The backend table. A new backend is one file in src/backends/ defining its open_<name>()
// factory, one line here and one option in CMakeLists.txt.
#include "backend.hpp"

#include "yolox_deploy/detector.hpp"

namespace yolox_deploy::detail {

#ifdef YOLOX_DEPLOY_WITH_ONNXRUNTIME
std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const BackendOptions& options);
#define YOLOX_DEPLOY_ONNXRUNTIME_FACTORY &open_onnxruntime
#else
#define YOLOX_DEPLOY_ONNXRUNTIME_FACTORY nullptr
#endif

#ifdef YOLOX_DEPLOY_WITH_OPENVINO
std::unique_ptr<Backend> open_openvino(const std::string& path, const BackendOptions& options);
#define YOLOX_DEPLOY_OPENVINO_FACTORY &open_openvino
#else
#define YOLOX_DEPLOY_OPENVINO_FACTORY nullptr
#endif

const std::vector<BackendEntry>& backend_entries() {
    static const std::vector<BackendEntry> entries = {
        {"onnxruntime", {".onnx"}, "-DYOLOX_DEPLOY_WITH_ONNXRUNTIME=ON", YOLOX_DEPLOY_ONNXRUNTIME_FACTORY},
        {"openvino", {".xml"}, "-DYOLOX_DEPLOY_WITH_OPENVINO=ON", YOLOX_DEPLOY_OPENVINO_FACTORY},
        // No C++ implementation yet (docs/cpp.md): ncnn's C++ library is in no registry we can build
        // against, and TensorRT needs a GPU to be tested on.
        {"ncnn", {".param"}, "", nullptr},
        {"tensorrt", {".engine", ".plan"}, "", nullptr},
    };
    return entries;
}

void check_end_to_end(BackendOutput& out, const std::vector<std::int64_t>& box_shape, std::int64_t batch,
                      const std::string& model) {
    out.max_dets = box_shape.size() == 3 ? box_shape[1] : -1;
    const bool ok = box_shape.size() == 3 && box_shape[0] == batch && box_shape[2] == 4 &&
                    static_cast<std::int64_t>(out.num_dets.size()) == batch &&
                    static_cast<std::int64_t>(out.scores.size()) == batch * out.max_dets &&
                    static_cast<std::int64_t>(out.class_ids.size()) == batch * out.max_dets &&
                    static_cast<std::int64_t>(out.boxes.size()) == batch * out.max_dets * 4;
    if (!ok) throw ModelFileError(model + " returned end-to-end outputs of unexpected shapes");
    for (const std::int32_t k : out.num_dets)
        if (k < 0 || k > out.max_dets)
            throw ModelFileError(model + " reported num_dets " + std::to_string(k) + " outside 0.." +
                                 std::to_string(out.max_dets));
}

std::int32_t checked_int32(double value, const std::string& model) {
    if (!(value >= -2147483648.0 && value <= 2147483647.0))
        throw ModelFileError(model + " returned " + std::to_string(value) + " where an integer count or class id "
                             "belongs (not an end-to-end YOLOX export?)");
    return static_cast<std::int32_t>(value);
}

std::string first_line(const std::string& text) {
    size_t start = text.find_first_not_of(" \t\r\n");
    if (start == std::string::npos) return "no message";
    const size_t end = text.find_first_of("\r\n", start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!line.empty() && (line.back() == ' ' || line.back() == ':')) line.pop_back();
    return line;
}

}  // namespace yolox_deploy::detail
