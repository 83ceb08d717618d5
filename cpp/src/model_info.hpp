// The exporters' metadata (ModelMetadata in yolox_deploy/artifacts/metadata.py), parsed from the
// key -> text map a backend reads (ONNX metadata_props, OpenVINO rt_info); missing or unreadable
// keys keep their defaults, as in Python.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace yolox_deploy::detail {

inline constexpr int kMaxStride = 4096;
inline constexpr int kMaxInputSide = 16384;  // as deploy.json's model.input_size (MAX_SIDE in Python)

struct EndToEndSettings {  // what an end-to-end graph baked in (yolox-export --nms)
    std::optional<float> conf, iou;
    std::optional<int> max_det;
    std::optional<bool> agnostic;
};

struct ModelMetadata {
    std::optional<std::pair<int, int>> input_size;
    std::vector<int> strides = {8, 16, 32};
    std::vector<std::string> class_names;
    std::optional<float> conf, iou;  // "defaults"
    std::optional<int> max_det;      // "defaults"; -1: all
    EndToEndSettings end_to_end;
};

// Throws ModelFileError for strides or an input size that cannot be right (0, negative, huge).
ModelMetadata parse_metadata(const std::map<std::string, std::string>& props);

// COCO names for an 80-class head, otherwise class0, class1, ... (those are the calling thread's own
// vector: valid until its next call with another count)
const std::vector<std::string>& default_class_names(std::int64_t num_classes);

}  // namespace yolox_deploy::detail
