// JSON text from files a user hands us (deploy.json, model metadata), read without trusting it:
// nesting is bounded before parsing (nlohmann's parser is iterative, but dump() and comparisons
// recurse), and values are shown in messages as Python's deploy reader shows them, bounded.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace yolox_deploy::detail {

// Arrays and objects nested deeper than this are refused before parsing (Python's json module
// stops at its recursion limit, about 1000).
inline constexpr int kMaxJsonDepth = 256;

// Whether `text` opens more than `max_depth` nested arrays/objects (brackets inside strings skipped).
bool nested_deeper_than(const std::string& text, int max_depth);

// Parses `text`; throws nlohmann::json::exception for invalid JSON and std::length_error for
// nesting deeper than kMaxJsonDepth (message: "nested deeper than 256 levels").
nlohmann::json parse_bounded(const std::string& text);

// `value` as Python's _short() in yolox_deploy/artifacts/deploy.py shows it: a top-level string
// quoted with '...', anything else as json.dumps writes it (", " and ": " separators), cut to
// `limit` characters with "..." (never walking more of the value than that).
std::string short_text(const nlohmann::json& value, std::size_t limit = 60);

}  // namespace yolox_deploy::detail
