#include "model_info.hpp"

#include <nlohmann/json.hpp>

namespace yolox_deploy::detail {
namespace {

using nlohmann::json;

json load(const std::map<std::string, std::string>& props, const std::string& key) {
    const auto it = props.find(key);
    if (it == props.end()) return nullptr;
    try {
        return json::parse(it->second);
    } catch (const json::exception&) {
        return nullptr;  // as Python's from_props: an unreadable key keeps its default
    }
}

std::optional<float> number(const json& object, const char* key) {
    if (object.is_object() && object.contains(key) && object[key].is_number()) return object[key].get<float>();
    return std::nullopt;
}

std::optional<int> count(const json& object, const char* key) {
    if (!object.is_object() || !object.contains(key)) return std::nullopt;
    if (object[key].is_null()) return -1;
    if (object[key].is_number_integer()) return object[key].get<int>();
    return std::nullopt;
}

}  // namespace

ModelMetadata parse_metadata(const std::map<std::string, std::string>& props) {
    ModelMetadata m;
    const json size = load(props, "input_size");
    if (size.is_array() && size.size() == 2 && size[0].is_number_integer() && size[1].is_number_integer())
        m.input_size = std::make_pair(size[0].get<int>(), size[1].get<int>());
    const json strides = load(props, "strides");
    if (strides.is_array() && !strides.empty()) {
        std::vector<int> values;
        for (const json& s : strides)
            if (s.is_number_integer()) values.push_back(s.get<int>());
        if (values.size() == strides.size()) m.strides = values;
    }
    const json names = load(props, "class_names");
    if (names.is_array())
        for (const json& n : names) m.class_names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
    const json defaults = load(props, "defaults");
    m.conf = number(defaults, "conf");
    m.iou = number(defaults, "iou");
    m.max_det = count(defaults, "max_det");
    const json baked = load(props, "end_to_end");
    m.end_to_end.conf = number(baked, "conf");
    m.end_to_end.iou = number(baked, "iou");
    if (baked.is_object() && baked.contains("max_det") && baked["max_det"].is_number_integer())
        m.end_to_end.max_det = baked["max_det"].get<int>();
    if (baked.is_object() && baked.contains("agnostic") && baked["agnostic"].is_boolean())
        m.end_to_end.agnostic = baked["agnostic"].get<bool>();
    return m;
}

}  // namespace yolox_deploy::detail
