#include "onnx_pixels.hpp"

#include <stdexcept>
#include <string_view>

namespace yolox_deploy::detail {
namespace {

// Field numbers from onnx.proto.
constexpr int kModelGraph = 7;
constexpr int kGraphNode = 1, kGraphInput = 11;
constexpr int kValueInfoName = 1, kValueInfoType = 2;
constexpr int kTypeTensor = 1, kTensorElemType = 1, kTensorShape = 2, kShapeDim = 1, kDimValue = 1;
constexpr int kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr int kAttrName = 1, kAttrI = 3, kAttrInts = 8, kAttrType = 20;
constexpr int kAttrInt = 2, kAttrIntsType = 7;  // AttributeProto.AttributeType
constexpr int kUint8 = 2, kFloat = 1;           // TensorProto.DataType
constexpr int kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5;
const char* const kCastOutput = "yolox_deploy_pixels_f32";

struct Field {
    int number, wire;
    std::string_view whole, payload;
};

std::uint64_t read_varint(std::string_view buf, size_t& pos) {
    std::uint64_t value = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
        if (pos >= buf.size()) break;
        const auto byte = static_cast<std::uint8_t>(buf[pos++]);
        value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
        if (byte < 0x80) return value;
    }
    throw std::invalid_argument("malformed varint");
}

std::vector<Field> fields(std::string_view buf) {
    std::vector<Field> out;
    size_t pos = 0;
    while (pos < buf.size()) {
        const size_t start = pos;
        const std::uint64_t key = read_varint(buf, pos);
        const int number = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
        size_t end = pos;
        if (wire == kVarint) {
            read_varint(buf, end);
        } else if (wire == kBytes) {
            const std::uint64_t length = read_varint(buf, pos);
            if (length > buf.size() - pos) throw std::invalid_argument("truncated protobuf message");
            end = pos + static_cast<size_t>(length);
        } else if (wire == kFixed64 || wire == kFixed32) {
            end = pos + (wire == kFixed64 ? 8 : 4);
        } else {
            throw std::invalid_argument("unsupported protobuf wire type");
        }
        if (end > buf.size()) throw std::invalid_argument("truncated protobuf message");
        out.push_back(Field{number, wire, buf.substr(start, end - start), buf.substr(pos, end - pos)});
        pos = end;
    }
    return out;
}

std::string varint(std::uint64_t value) {
    std::string out;
    do {
        const auto byte = static_cast<char>((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
        out.push_back(byte);
        value >>= 7;
    } while (value);
    return out;
}

std::string int_field(int number, std::uint64_t value) { return varint(static_cast<std::uint64_t>(number) << 3 | kVarint) + varint(value); }

std::string bytes_field(int number, const std::string& payload) {
    return varint(static_cast<std::uint64_t>(number) << 3 | kBytes) + varint(payload.size()) + payload;
}

std::string dimension(std::int64_t dim) {
    return bytes_field(kShapeDim, dim > 0 ? int_field(kDimValue, static_cast<std::uint64_t>(dim)) : std::string());
}

std::string pixel_value_info(const std::vector<std::int64_t>& nchw) {
    const std::string shape = dimension(nchw[0]) + dimension(nchw[2]) + dimension(nchw[3]) + dimension(3);
    const std::string tensor = int_field(kTensorElemType, kUint8) + bytes_field(kTensorShape, shape);
    return bytes_field(kValueInfoName, kPixelInput) + bytes_field(kValueInfoType, bytes_field(kTypeTensor, tensor));
}

std::string node(const std::string& op_type, const std::string& input, const std::string& output,
                 const std::string& attribute, const std::string& name) {
    const std::string body = bytes_field(kNodeInput, input) + bytes_field(kNodeOutput, output) +
                             bytes_field(kNodeName, name) + bytes_field(kNodeOpType, op_type) +
                             bytes_field(kNodeAttribute, attribute);
    return bytes_field(kGraphNode, body);
}

std::string conversion_nodes(const std::string& input_name) {
    const std::string cast_to = bytes_field(kAttrName, "to") + int_field(kAttrI, kFloat) + int_field(kAttrType, kAttrInt);
    std::string perm = bytes_field(kAttrName, "perm");
    for (const int p : {0, 3, 1, 2}) perm += int_field(kAttrInts, static_cast<std::uint64_t>(p));
    perm += int_field(kAttrType, kAttrIntsType);
    return node("Cast", kPixelInput, kCastOutput, cast_to, "yolox_deploy_cast") +
           node("Transpose", kCastOutput, input_name, perm, "yolox_deploy_transpose");
}

bool names(std::string_view value_info, const std::string& name) {
    for (const Field& f : fields(value_info))
        if (f.number == kValueInfoName && f.wire == kBytes) return f.payload == name;
    return false;
}

std::string graph_with_pixel_input(std::string_view graph, const std::string& input_name,
                                   const std::vector<std::int64_t>& nchw) {
    std::string out = conversion_nodes(input_name);  // first: repeated fields keep their order
    int replaced = 0;
    for (const Field& f : fields(graph)) {
        if (f.number == kGraphInput && f.wire == kBytes && names(f.payload, input_name)) {
            out += bytes_field(kGraphInput, pixel_value_info(nchw));
            ++replaced;
        } else {
            out.append(f.whole);
        }
    }
    if (replaced != 1) throw std::invalid_argument("graph input " + input_name + " found " + std::to_string(replaced) + " times");
    return out;
}

}  // namespace

std::string with_pixel_input(const std::string& model, const std::string& input_name,
                             const std::vector<std::int64_t>& nchw_dims) {
    if (nchw_dims.size() != 4) throw std::invalid_argument("expected an NCHW input shape");
    std::string out;
    int graphs = 0;
    for (const Field& f : fields(model)) {
        if (f.number == kModelGraph && f.wire == kBytes) {
            out += bytes_field(kModelGraph, graph_with_pixel_input(f.payload, input_name, nchw_dims));
            ++graphs;
        } else {
            out.append(f.whole);
        }
    }
    if (graphs != 1) throw std::invalid_argument("not an ONNX model (no graph)");
    return out;
}

}  // namespace yolox_deploy::detail
