#include "deployment.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <vector>

#include "backend.hpp"
#include "json_text.hpp"
#include "yolox_deploy/detector.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace yolox_deploy::detail {
namespace {

const char* const kDeployFile = "deploy.json";
const char* const kFormat = "yolox_deploy.deployment/1";
const std::vector<std::string> kRequired = {"model_file", "backend", "precision", "arithmetic",
                                            "threads",    "batch",   "detector",  "machine"};
const std::vector<std::string> kDeployedPrecisions = {"fp32", "fp16", "int8", "int8-all", "int8-nncf", "bf16",
                                                        "int8-nncf-bf16", "int8-mixed"};
const std::vector<std::string> kRuntimePrecisions = {"fp32", "bf16", "fp16"};
// files that travel with a model file of these kinds (same stem)
const std::map<std::string, std::vector<std::string>> kCompanions = {
    {".xml", {".bin"}}, {".param", {".bin", ".json"}}, {".engine", {".json"}}, {".plan", {".json"}}};
constexpr long long kMaxThreads = 4096, kMaxBatch = 4096, kMaxDetections = 100000, kMaxSide = 16384;

bool inside(const fs::path& file, const fs::path& root) {
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(file, ec);
    if (ec) return false;
    const std::string r = root.string(), f = resolved.string();
    return f == r || (f.size() > r.size() && f.compare(0, r.size(), r) == 0 && f[r.size()] == '/');
}

// Reads one field at a time; a wrong type or value is a one-line ModelFileError naming the field.
class FieldReader {
   public:
    FieldReader(std::string path, const json& record) : path_(std::move(path)), record_(record) {}

    [[noreturn]] void refuse(const std::string& name, const json& value, const std::string& must_be) const {
        throw ModelFileError(path_ + ": field '" + name + "' is " + short_text(value) + ", it must be " + must_be +
                             "; re-run yolox-tune");
    }

    const json& at(const std::string& name) const { return record_.at(name); }
    const std::string& path() const { return path_; }

    std::string text(const std::string& name, const json& value) const {
        if (!value.is_string()) refuse(name, value, "a string");
        return value.get<std::string>();
    }

    std::string choice(const std::string& name, const std::vector<std::string>& allowed) const {
        const std::string value = text(name, at(name));
        if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
            std::string list;
            for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
            refuse(name, at(name), "one of " + list);
        }
        return value;
    }

    std::optional<long long> integer(const std::string& name, const json& value, long long low, long long high,
                                     bool optional) const {
        if (value.is_null() && optional) return std::nullopt;
        const bool ok = (value.is_number_integer() || value.is_number_unsigned()) && !value.is_boolean() &&
                        value.get<double>() >= static_cast<double>(low) &&
                        value.get<double>() <= static_cast<double>(high);
        if (!ok)
            refuse(name, value, "an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]" +
                                    (optional ? " or null" : ""));
        return value.get<long long>();
    }

    float fraction(const std::string& name, const json& value) const {
        if (!value.is_number() || value.is_boolean() || !(value.get<double>() >= 0 && value.get<double>() <= 1))
            refuse(name, value, "a number in [0, 1]");
        return static_cast<float>(value.get<double>());
    }

    std::string bare_file_name(const std::string& name) const {
        const std::string value = text(name, at(name));
        const bool bare = !value.empty() && value != "." && value != ".." &&
                          value.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
        if (!bare)
            refuse(name, at(name), "the bare name of a file inside the deployment folder (no folders, no '..', "
                                   "not absolute)");
        return value;
    }

   private:
    std::string path_;
    const json& record_;
};

// The Python type name of a JSON value, as Python's deploy reader names a non-object record.
const char* python_type(const json& value) {
    if (value.is_array()) return "list";
    if (value.is_string()) return "str";
    if (value.is_boolean()) return "bool";
    if (value.is_number_integer() || value.is_number_unsigned()) return "int";
    if (value.is_number_float()) return "float";
    if (value.is_null()) return "NoneType";
    return "dict";
}

json load_record(const fs::path& folder, const fs::path& path) {
    std::error_code ec;
    if (fs::is_symlink(path, ec) && !inside(path, fs::weakly_canonical(folder)))
        throw ModelFileError(path.string() + " is a link to a file outside the deployment folder; a deployment "
                                             "folder holds its own files: copy it in");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ModelFileError(folder.string() + " has no deploy.json: it is not a deployment folder (yolox-tune "
                                               "writes them); pass a model file");
    std::stringstream text;
    text << in.rdbuf();
    json record;
    try {
        record = parse_bounded(text.str());
    } catch (const std::exception& e) {  // invalid JSON, or nested too deep to show safely
        throw ModelFileError(path.string() + " is not valid JSON (" + first_line(e.what()) + "); re-run yolox-tune");
    }
    if (!record.is_object() || !record.contains("format") || record["format"] != kFormat) {
        const std::string found = !record.is_object()           ? "'" + std::string(python_type(record)) + "'"
                                  : !record.contains("format") ? std::string("None")
                                                                : short_text(record["format"]);
        throw ModelFileError(path.string() + " is not a yolox_deploy deployment (format " + found + ", expected '" +
                             kFormat + "')");
    }
    std::string missing;
    for (const std::string& key : kRequired)
        if (!record.contains(key)) missing += (missing.empty() ? "" : ", ") + key;
    if (!missing.empty()) throw ModelFileError(path.string() + " lacks " + missing + "; re-run yolox-tune");
    return record;
}

void read_detector_settings(const FieldReader& field, Deployment& d) {
    const json& detector = field.at("detector");
    if (!detector.is_object()) field.refuse("detector", detector, "an object (conf, iou, max_det, class_agnostic)");
    std::vector<std::string> unknown;
    for (const auto& item : detector.items())
        if (item.key() != "conf" && item.key() != "iou" && item.key() != "max_det" && item.key() != "class_agnostic")
            unknown.push_back(item.key());
    if (!unknown.empty())  // as Python: the first unknown key in sorted order
        throw ModelFileError(field.path() + ": field 'detector' has an unknown key " +
                             short_text(*std::min_element(unknown.begin(), unknown.end())) +
                             "; the detector settings are conf, iou, max_det and class_agnostic; re-run yolox-tune");
    if (detector.contains("conf")) d.conf = field.fraction("detector.conf", detector["conf"]);
    if (detector.contains("iou")) d.iou = field.fraction("detector.iou", detector["iou"]);
    if (detector.contains("max_det")) {
        const auto value = field.integer("detector.max_det", detector["max_det"], 1, kMaxDetections, true);
        d.max_det = value ? static_cast<int>(*value) : -1;
    }
    if (detector.contains("class_agnostic")) {
        if (!detector["class_agnostic"].is_boolean())
            field.refuse("detector.class_agnostic", detector["class_agnostic"], "true or false");
        d.class_agnostic = detector["class_agnostic"].get<bool>();
    }
}

void read_input_size(const FieldReader& field, const json& record, Deployment& d) {
    if (!record.contains("model")) return;
    const json& model = record["model"];
    if (!model.is_object()) field.refuse("model", model, "an object (name, input_size)");
    if (!model.contains("input_size") || model["input_size"].is_null()) return;
    const json& size = model["input_size"];
    bool ok = size.is_array() && size.size() == 2;
    for (size_t i = 0; ok && i < 2; ++i)
        ok = size[i].is_number_integer() && size[i].get<long long>() >= 32 && size[i].get<long long>() <= kMaxSide &&
             size[i].get<long long>() % 32 == 0;
    if (!ok)
        field.refuse("model.input_size", size,
                     "[height, width], multiples of 32 in [32, " + std::to_string(kMaxSide) + "], or null");
    d.input_size = std::make_pair(size[0].get<int>(), size[1].get<int>());
}

void check_files_inside(const fs::path& folder, const std::string& model_file, const fs::path& deploy_json) {
    const fs::path root = fs::weakly_canonical(folder);
    const fs::path model = folder / model_file;
    std::error_code ec;
    if (!fs::is_regular_file(model, ec))
        throw ModelFileError(folder.string() + " names " + model_file + " in deploy.json but the file is missing; "
                                                                         "re-run yolox-tune");
    std::vector<fs::path> files = {model};
    std::string suffix = model.extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), ::tolower);
    if (const auto it = kCompanions.find(suffix); it != kCompanions.end())
        for (const std::string& s : it->second) files.push_back(fs::path(model).replace_extension(s));
    for (const fs::path& file : files)
        if ((fs::exists(file, ec) || fs::is_symlink(file, ec)) && !inside(file, root))
            throw ModelFileError(deploy_json.string() + ": field 'model_file' leads to " + file.filename().string() +
                                 ", which resolves outside the deployment folder " + folder.string() +
                                 " (a symlink?); a deployment folder holds its own files: copy the file in");
}

}  // namespace

bool is_deployment_folder(const std::string& path) {
    std::error_code ec;
    return fs::is_directory(path, ec) && fs::exists(fs::path(path) / kDeployFile, ec);
}

Deployment read_deployment(const std::string& folder_text) {
    const fs::path folder(folder_text);
    const fs::path path = folder / kDeployFile;
    const json record = load_record(folder, path);
    const FieldReader field(path.string(), record);
    Deployment d;
    d.folder = folder.string();
    const std::string model_file = field.bare_file_name("model_file");
    d.backend = field.text("backend", field.at("backend"));
    if (!std::regex_match(d.backend, std::regex("[a-z][a-z0-9_]{0,31}")))
        field.refuse("backend", field.at("backend"), "a backend name (onnxruntime, openvino ...)");
    field.choice("precision", kDeployedPrecisions);
    d.arithmetic = field.choice("arithmetic", kRuntimePrecisions);
    const auto threads = field.integer("threads", field.at("threads"), 1, kMaxThreads, true);
    d.threads = threads ? static_cast<int>(*threads) : 0;
    d.batch = static_cast<int>(*field.integer("batch", field.at("batch"), 1, kMaxBatch, false));
    read_detector_settings(field, d);
    read_input_size(field, record, d);
    if (record.contains("source")) {
        const json& source = record["source"];
        if (!source.is_object()) field.refuse("source", source, "an object (path, sha256)");
        if (source.contains("sha256")) field.text("source.sha256", source["sha256"]);
    }
    if (record.contains("spinning") && !record["spinning"].is_null()) {
        if (!record["spinning"].is_boolean() || d.backend != "onnxruntime")
            field.refuse("spinning", record["spinning"], "true or false, on an onnxruntime deployment");
        d.spinning = record["spinning"].get<bool>();
    }
    if (!field.at("machine").is_object()) field.refuse("machine", field.at("machine"), "an object (the machine fingerprint)");
    check_files_inside(folder, model_file, path);
    d.model = (folder / model_file).string();
    return d;
}

}  // namespace yolox_deploy::detail
