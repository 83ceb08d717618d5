// yolox-detect-cpp: the C++ Detector on images or folders, writing yolox-detect's detections.json
// fields. Errors: one line on stderr and exit code 2 (a bad image among several: reported,
// skipped, exit code 1), as the Python CLIs do.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "yolox_deploy/detector.hpp"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

const char* const kProgram = "yolox-detect-cpp";
const std::set<std::string> kImageSuffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"};

const char* const kUsage =
    "usage: yolox-detect-cpp --model MODEL [--backend onnxruntime|openvino] [--conf C] [--iou I] [--max-det K]\n"
    "                        [--threads N] [--precision fp32|bf16] [--agnostic] [--input-size H,W]\n"
    "                        [--batch-size B] --json OUT [--save-input DIR] [--repeat R --timings FILE]\n"
    "                        [--slice H[,W] [--overlap F] [--no-full-image] [--merge greedy_nmm|nms]\n"
    "                         [--match ios|iou] [--match-threshold F] [--recheck sahi|none] [--force-merge]]\n"
    "                        IMAGE_OR_FOLDER...\n"
    "\n"
    "  --model MODEL      an .onnx file, an OpenVINO .xml, or a yolox-tune deployment folder\n"
    "  --json OUT         where the detections go (yolox-detect's detections.json fields)\n"
    "  --max-det K        detections kept per image (-1: all)\n"
    "  --batch-size B     images per backend call (dynamic-batch models; default: the deployment's, else 1)\n"
    "  --save-input DIR   also write each letterboxed input as raw float32 [3, H, W] (DIR/NAME.f32)\n"
    "  --repeat R         run each image R times (benchmarks); --timings FILE writes per-stage times\n"
    "  --slice H[,W]      sliced inference: overlapping H x W windows (multiples of 32) and the whole image,\n"
    "                     merged (as yolox-detect --slice; --agnostic merges across classes too)\n"
    "  --version          the library version, compiled backends and core sources' SHA-256\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Arguments {
    std::string model, json_out, save_input, timings_out;
    yolox_deploy::DetectorOptions options;
    std::vector<std::string> sources;
    int repeat = 1;
    yolox_deploy::SliceSettings slices;
    bool sliced = false;                  // --slice given
    std::vector<std::string> slice_flags;  // its options given (they need --slice)
};

double parse_double(const std::string& flag, const std::string& text) {  // as Python's float()
    try {
        size_t used = 0;
        const double value = std::stod(text, &used);
        if (used == text.size()) return value;
    } catch (const std::exception&) {
    }
    throw UsageError(flag + " needs a number, got '" + text + "'");
}

// a float setting, read as Python reads it (a double, then narrowed)
float parse_float(const std::string& flag, const std::string& text) {
    const double value = parse_double(flag, text);
    if (!(std::fabs(value) <= std::numeric_limits<float>::max()))  // NaN too (a float cast of it is fine, of 1e39 not)
        throw UsageError(flag + " needs a number in float's range, got '" + text + "'");
    return static_cast<float>(value);
}

int parse_int(const std::string& flag, const std::string& text) {
    try {
        size_t used = 0;
        const int value = std::stoi(text, &used);
        if (used == text.size()) return value;
    } catch (const std::exception&) {
    }
    throw UsageError(flag + " needs an integer, got '" + text + "'");
}

Arguments parse(int argc, char** argv) {
    Arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--model") a.model = value();
        else if (arg == "--backend") a.options.backend = value();
        else if (arg == "--conf") a.options.conf = parse_float(arg, value());
        else if (arg == "--iou") a.options.iou = parse_float(arg, value());
        else if (arg == "--max-det") a.options.max_det = parse_int(arg, value());
        else if (arg == "--threads") a.options.threads = parse_int(arg, value());
        else if (arg == "--precision") a.options.precision = value();
        else if (arg == "--agnostic") a.options.class_agnostic = true;
        else if (arg == "--batch-size") a.options.batch_size = parse_int(arg, value());
        else if (arg == "--input-size") {
            const std::string text = value();
            const size_t comma = text.find(',');
            const int h = parse_int(arg, text.substr(0, comma));
            a.options.input_size = {h, comma == std::string::npos ? h : parse_int(arg, text.substr(comma + 1))};
        } else if (arg == "--slice") {
            const std::string text = value();
            const size_t comma = text.find(',');
            a.slices.height = parse_int(arg, text.substr(0, comma));
            a.slices.width = comma == std::string::npos ? a.slices.height : parse_int(arg, text.substr(comma + 1));
            a.sliced = true;
        } else if (arg == "--overlap" || arg == "--no-full-image" || arg == "--merge" || arg == "--match" ||
                   arg == "--match-threshold" || arg == "--recheck" || arg == "--force-merge") {
            yolox_deploy::SliceSettings& settings = a.slices;
            if (arg == "--overlap") settings.overlap = parse_double(arg, value());
            else if (arg == "--no-full-image") settings.full_image = false;
            else if (arg == "--merge") settings.merge = value();
            else if (arg == "--match") settings.match = value();
            else if (arg == "--match-threshold") settings.match_threshold = parse_double(arg, value());
            else if (arg == "--recheck") settings.recheck = value();
            else settings.force_merge = true;
            a.slice_flags.push_back(arg);
        } else if (arg == "--json") a.json_out = value();
        else if (arg == "--save-input") a.save_input = value();
        else if (arg == "--repeat") a.repeat = parse_int(arg, value());
        else if (arg == "--timings") a.timings_out = value();
        else if (!arg.empty() && arg[0] == '-') throw UsageError("unknown option " + arg);
        else a.sources.push_back(arg);
    }
    if (a.model.empty()) throw UsageError("--model is required");
    if (!a.slice_flags.empty() && !a.sliced) throw UsageError(a.slice_flags[0] + " applies only with --slice");
    a.slices.class_agnostic = a.options.class_agnostic.value_or(false);
    if (a.json_out.empty()) throw UsageError("--json is required");
    if (a.sources.empty()) throw UsageError("give at least one image or folder");
    if (a.repeat < 1) throw UsageError("--repeat must be >= 1");
    if (a.options.threads < 0) throw UsageError("--threads must be >= 0");
    if (a.options.batch_size < 0) throw UsageError("--batch-size must be >= 1");
    return a;
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), ::tolower);
    return text;
}

// Files named, and the images of folders named (sorted, not recursive), as yolox-detect expands them.
std::vector<std::string> expand_sources(const std::vector<std::string>& sources) {
    std::vector<std::string> files;
    for (const std::string& source : sources) {
        std::error_code ec;
        if (fs::is_directory(source, ec)) {
            std::vector<std::string> found;
            for (const auto& entry : fs::directory_iterator(source))
                if (entry.is_regular_file() && kImageSuffixes.count(lower(entry.path().extension().string())))
                    found.push_back((fs::path(source) / entry.path().filename()).lexically_normal().string());
            std::sort(found.begin(), found.end());
            if (found.empty()) throw yolox_deploy::InvalidInputError("no images in " + source);
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::exists(source, ec)) {
            files.push_back(source);
        } else {
            throw yolox_deploy::InvalidInputError("no such file or folder: " + source);
        }
    }
    return files;
}

// "2 person, 1 dog" as yolox-detect's summary (most common first, ties in order of appearance).
std::string describe(const std::vector<yolox_deploy::Detection>& detections) {
    std::vector<std::pair<std::string, int>> counts;
    for (const auto& d : detections) {
        auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == d.class_name; });
        if (it == counts.end()) counts.emplace_back(d.class_name, 1);
        else ++it->second;
    }
    std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string text;
    for (const auto& [name, n] : counts) text += (text.empty() ? "" : ", ") + std::to_string(n) + " " + name;
    return text.empty() ? "no detections" : text;
}

ordered_json to_json(const std::vector<yolox_deploy::Detection>& detections, const cv::Mat& image) {
    ordered_json list = ordered_json::array();
    for (const auto& d : detections)
        list.push_back(ordered_json{{"box_xyxy", {static_cast<double>(d.x1), static_cast<double>(d.y1),
                                                   static_cast<double>(d.x2), static_cast<double>(d.y2)}},
                                    {"score", static_cast<double>(d.score)},
                                    {"class_id", d.class_id},
                                    {"class_name", d.class_name}});
    return ordered_json{{"image_size", {image.rows, image.cols}}, {"detections", list}, {"summary", describe(detections)}};
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw yolox_deploy::InvalidInputError("cannot write " + path);
}

void save_input(const yolox_deploy::Detector& detector, const cv::Mat& image, const std::string& folder,
                const std::string& path) {
    const auto [tensor, ratio] = detector.letterbox(image);
    std::ofstream out(fs::path(folder) / (fs::path(path).filename().string() + ".f32"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(tensor.data()), static_cast<std::streamsize>(tensor.size() * sizeof(float)));
    if (!out) throw yolox_deploy::InvalidInputError("cannot write the letterboxed input into " + folder);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n == 0 ? 0 : n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// One image per file, or nothing (reported on stderr) where it cannot be read among several.
struct Loaded {
    std::string path;
    cv::Mat image;
};

int run(const Arguments& args) {
    const std::vector<std::string> files = expand_sources(args.sources);
    const yolox_deploy::Detector detector(args.model, args.options);
    if (!args.save_input.empty()) fs::create_directories(args.save_input);
    ordered_json results = ordered_json::object();
    std::vector<double> pre, infer, post, total;
    int failures = 0;
    // images go to the Detector in groups of its batch size (one backend call each)
    const size_t group = static_cast<size_t>(std::max(1, detector.info().batch_size));
    for (size_t first = 0; first < files.size(); first += group) {
        std::vector<Loaded> loaded;
        for (size_t i = first; i < std::min(files.size(), first + group); ++i) {
            try {
                loaded.push_back({files[i], yolox_deploy::read_image(files[i])});
            } catch (const yolox_deploy::InvalidInputError& e) {
                if (files.size() == 1) throw;
                std::cerr << kProgram << ": error: " << e.what() << "\n";
                ++failures;
            }
        }
        if (loaded.empty()) continue;
        std::vector<cv::Mat> images;
        for (const Loaded& l : loaded) images.push_back(l.image);
        std::vector<std::vector<yolox_deploy::Detection>> detections;
        for (int r = 0; r < args.repeat; ++r) {
            yolox_deploy::StageTimes times;
            const auto start = std::chrono::steady_clock::now();
            if (args.sliced) {  // one image at a time: its windows are the batch
                detections.clear();
                for (const cv::Mat& image : images) detections.push_back(detector.detect_sliced(image, args.slices, &times));
            } else {
                detections = detector.detect(images, &times);
            }
            total.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
            pre.push_back(times.preprocess_ms), infer.push_back(times.inference_ms), post.push_back(times.postprocess_ms);
        }
        for (size_t i = 0; i < loaded.size(); ++i) {
            if (!args.save_input.empty()) save_input(detector, loaded[i].image, args.save_input, loaded[i].path);
            results[loaded[i].path] = to_json(detections[i], loaded[i].image);
        }
    }
    // a file name that is not UTF-8 is written with U+FFFD in place of its bad bytes (JSON is UTF-8)
    write_text(args.json_out, results.dump(1, ' ', false, ordered_json::error_handler_t::replace) + "\n");
    if (!args.timings_out.empty()) {
        const auto& info = detector.info();
        ordered_json timings = {{"backend", info.backend}, {"precision", info.precision}, {"threads", info.threads},
                                {"pixel_input", info.pixel_input},
                                {"input_size", {info.input_size.first, info.input_size.second}},
                                {"runs", total.size()}, {"median_ms", {{"preprocess", median(pre)}, {"inference", median(infer)},
                                {"postprocess", median(post)}, {"total", median(total)}}},
                                {"runs_ms", {{"preprocess", pre}, {"inference", infer}, {"postprocess", post}, {"total", total}}}};
        write_text(args.timings_out, timings.dump(1, ' ', false, ordered_json::error_handler_t::replace) + "\n");
    }
    std::cout << "wrote detections of " << results.size() << " image(s) to " << args.json_out << "\n";
    return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
        std::cout << kUsage;
        return 0;
    }
    if (argc == 2 && std::string(argv[1]) == "--version") {
        std::string backends;
        for (const auto& b : yolox_deploy::compiled_backends()) backends += (backends.empty() ? "" : ",") + b;
        std::cout << "yolox_deploy " << yolox_deploy::version() << " backends=" << backends
                  << " core_sources_sha256=" << yolox_deploy::core_sources_sha256() << "\n";
        return 0;
    }
    try {
        return run(parse(argc, argv));
    } catch (const UsageError& e) {
        std::cerr << kProgram << ": error: " << e.what() << " (see yolox-detect-cpp --help)\n";
        return 2;
    } catch (const yolox_deploy::Error& e) {
        std::cerr << kProgram << ": error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {  // anything else (a runtime's own exception): still one line
        std::string message = e.what();
        message = message.substr(0, message.find('\n'));
        std::cerr << kProgram << ": error: " << message << "\n";
        return 2;
    }
}
