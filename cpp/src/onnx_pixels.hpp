// An ONNX detector given a uint8 NHWC pixel input: Cast + Transpose in front of its float32 NCHW
// input, so ONNX Runtime does the uint8 -> float32 conversion, as the Python backend has it do
// (yolox_deploy/artifacts/onnx_pixels.py, the same protobuf edit). The original graph sees the
// same floats: its outputs are bit-identical.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace yolox_deploy::detail {

inline const char* const kPixelInput = "yolox_deploy_pixels";  // uint8 [B, H, W, 3], BGR, letterboxed

// The serialized model with `input_name` (dims: > 0 fixed, else unknown) replaced by kPixelInput;
// throws std::invalid_argument when the bytes are not an ONNX model it can edit.
std::string with_pixel_input(const std::string& model, const std::string& input_name,
                             const std::vector<std::int64_t>& nchw_dims);

}  // namespace yolox_deploy::detail
