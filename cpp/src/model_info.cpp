#include "model_info.hpp"

#include <nlohmann/json.hpp>

#include <climits>
#include <cmath>
#include <limits>

#include "json_text.hpp"
#include "yolox_deploy/detector.hpp"

namespace yolox_deploy::detail {
namespace {

using nlohmann::json;

json load(const std::map<std::string, std::string>& props, const std::string& key) {
    const auto it = props.find(key);
    if (it == props.end()) return nullptr;
    try {
        return parse_bounded(it->second);
    } catch (const std::exception&) {
        return nullptr;  // as Python's from_props: an unreadable key (or one nested too deep) keeps its default
    }
}

std::optional<float> number(const json& object, const char* key) {
    if (!object.is_object() || !object.contains(key) || !object[key].is_number()) return std::nullopt;
    const double value = object[key].get<double>();
    // outside float's range the conversion is undefined; such a value is unreadable, as a string would be
    if (!(std::fabs(value) <= static_cast<double>(std::numeric_limits<float>::max()))) return std::nullopt;
    return static_cast<float>(value);
}

// An integer that fits an int, else nothing (unreadable).
std::optional<int> integer(const json& value) {
    if (!value.is_number_integer()) return std::nullopt;
    if (value.is_number_unsigned() && value.get<unsigned long long>() > static_cast<unsigned long long>(INT_MAX))
        return std::nullopt;
    const long long v = value.get<long long>();
    if (v < INT_MIN || v > INT_MAX) return std::nullopt;
    return static_cast<int>(v);
}

std::optional<int> count(const json& object, const char* key) {
    if (!object.is_object() || !object.contains(key)) return std::nullopt;
    if (object[key].is_null()) return -1;
    return integer(object[key]);
}

}  // namespace

ModelMetadata parse_metadata(const std::map<std::string, std::string>& props) {
    ModelMetadata m;
    const json size = load(props, "input_size");
    if (size.is_array() && size.size() == 2 && size[0].is_number_integer() && size[1].is_number_integer()) {
        const long long h = size[0].get<long long>(), w = size[1].get<long long>();
        if (h < 1 || w < 1 || h > kMaxInputSide || w > kMaxInputSide)
            throw ModelFileError("the model's metadata has input_size " + short_text(size) + "; each side must be "
                                 "in [1, " + std::to_string(kMaxInputSide) + "]: re-export it with yolox-export");
        m.input_size = std::make_pair(static_cast<int>(h), static_cast<int>(w));
    }
    const json strides = load(props, "strides");
    if (strides.is_array() && !strides.empty()) {
        std::vector<int> values;
        for (const json& s : strides)
            if (s.is_number_integer() && s.get<long long>() >= 1 && s.get<long long>() <= kMaxStride)
                values.push_back(s.get<int>());
        if (values.size() != strides.size())  // a stride of 0 would divide by zero, a negative one wrap
            throw ModelFileError("the model's metadata has strides " + short_text(strides) + "; strides are integers "
                                 "in [1, " + std::to_string(kMaxStride) + "] (8, 16, 32 for YOLOX): re-export it "
                                 "with yolox-export");
        m.strides = values;
    }
    const json names = load(props, "class_names");
    if (names.is_array())
        for (const json& n : names) m.class_names.push_back(n.is_string() ? n.get<std::string>() : short_text(n, 200));
    const json defaults = load(props, "defaults");
    m.conf = number(defaults, "conf");
    m.iou = number(defaults, "iou");
    m.max_det = count(defaults, "max_det");
    const json baked = load(props, "end_to_end");
    m.end_to_end.conf = number(baked, "conf");
    m.end_to_end.iou = number(baked, "iou");
    if (baked.is_object() && baked.contains("max_det")) m.end_to_end.max_det = integer(baked["max_det"]);
    if (baked.is_object() && baked.contains("agnostic") && baked["agnostic"].is_boolean())
        m.end_to_end.agnostic = baked["agnostic"].get<bool>();
    return m;
}

}  // namespace yolox_deploy::detail
