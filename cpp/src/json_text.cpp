#include "json_text.hpp"

#include <cmath>
#include <stdexcept>

namespace yolox_deploy::detail {
namespace {

using nlohmann::json;

// Appends `value` to `out`, stopping once out holds more than `limit` characters: the recursion
// is at most limit + 1 deep, since every level adds at least one character before descending.
void append(const json& value, std::size_t limit, std::string& out) {
    if (out.size() > limit) return;
    if (value.is_array()) {
        out += '[';
        bool first = true;
        for (const json& item : value) {
            if (out.size() > limit) return;
            if (!first) out += ", ";
            first = false;
            append(item, limit, out);
        }
        out += ']';
    } else if (value.is_object()) {
        out += '{';
        bool first = true;
        for (const auto& item : value.items()) {
            if (out.size() > limit) return;
            if (!first) out += ", ";
            first = false;
            out += json(item.key()).dump() + ": ";
            append(item.value(), limit, out);
        }
        out += '}';
    } else if (value.is_number_float() && std::isnan(value.get<double>())) {
        out += "NaN";
    } else {
        out += value.dump(-1, ' ', false, json::error_handler_t::replace);  // a scalar: no recursion
    }
}

// Python's repr() of a str, for the common cases: single quotes unless the text holds one and
// no double quote; backslashes and control characters escaped.
std::string python_repr(const std::string& text) {
    const bool double_quotes = text.find('\'') != std::string::npos && text.find('"') == std::string::npos;
    const char quote = double_quotes ? '"' : '\'';
    std::string out(1, quote);
    for (const char c : text) {
        if (c == quote || c == '\\') out += '\\', out += c;
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (static_cast<unsigned char>(c) < 0x20) {
            static const char* const hex = "0123456789abcdef";
            out += "\\x", out += hex[(c >> 4) & 0xf], out += hex[c & 0xf];
        } else {
            out += c;
        }
    }
    return out + quote;
}

}  // namespace

bool nested_deeper_than(const std::string& text, int max_depth) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

json parse_bounded(const std::string& text) {
    if (nested_deeper_than(text, kMaxJsonDepth))
        throw std::length_error("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return json::parse(text);
}

std::string short_text(const json& value, std::size_t limit) {
    std::string text;
    if (value.is_string()) text = python_repr(value.get<std::string>());
    else append(value, limit, text);
    return text.size() <= limit ? text : text.substr(0, limit - 3) + "...";
}

}  // namespace yolox_deploy::detail
