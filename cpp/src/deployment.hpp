// Deployment folders written by yolox-tune: deploy.json read as strictly as the Python package
// reads it (yolox_deploy/artifacts/deploy.py): every field type- and range-checked, the model file
// and its companions inside the folder, symlinks resolved.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace yolox_deploy::detail {

struct Deployment {
    std::string folder;
    std::string model;       // folder / model_file
    std::string backend;
    std::string arithmetic;  // what the runtime is asked to compute in: fp32, bf16, fp16
    int threads = 0;         // 0: not set
    int batch = 1;
    std::optional<float> conf, iou;
    std::optional<int> max_det;  // -1: all
    std::optional<bool> class_agnostic;
    std::optional<std::pair<int, int>> input_size;
    std::optional<bool> spinning;  // ONNX Runtime: intra-op threads spin between runs (as measured by yolox-tune)
};

bool is_deployment_folder(const std::string& path);

// Throws ModelFileError (one line naming the field) for anything but a well-formed deployment.
Deployment read_deployment(const std::string& folder);

}  // namespace yolox_deploy::detail
