// yolox_deploy_fuzz SECONDS SEED SEED_FILE...: a seeded mutation loop over the readers of bytes a
// user hands the library (deploy.json, ONNX metadata values, the ONNX protobuf the pixel-input
// edit parses), run for a fixed time under ASan/UBSan in CI (.ci/cpp). Each seed file is mutated
// (bit flips, byte edits, spliced JSON tokens, cut and repeated ranges) and fed to every reader;
// the only acceptable outcomes are a result or the reader's documented exception. Anything else
// (another exception type, a sanitizer report, a crash) is a finding: printed, exit code 1.
// Prints one summary line: executions per reader, findings.
#include <yolox_deploy/detector.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include <unistd.h>

#include "../src/deployment.hpp"
#include "../src/model_info.hpp"
#include "../src/onnx_pixels.hpp"

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTokens = {
    "[", "]", "{", "}", "\"", ",", ":", "null", "true", "false", "0", "-1", "1e999", "-1e999", "NaN",
    "18446744073709551616", "9223372036854775807", "-9223372036854775808", "4294967296", "0.5", "\"..\"",
    "\"/etc/passwd\"", "\\u0000", "\"\\ud800\"", "[[[[[[[[[[[[[[[[", "]]]]]]]]", "{\"a\":", "\xff\xfe", "\x80"};
const std::vector<std::string> kMetadataKeys = {"input_size", "strides", "class_names", "defaults", "end_to_end"};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
}

std::string mutate(std::string data, std::mt19937_64& rng) {
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
        const size_t at = data.empty() ? 0 : rng() % (data.size() + 1);
        switch (rng() % 7) {
            case 0:  // flip a bit
                if (!data.empty()) data[at % data.size()] ^= static_cast<char>(1 << (rng() % 8));
                break;
            case 1:  // set a byte
                if (!data.empty()) data[at % data.size()] = static_cast<char>(rng() & 0xff);
                break;
            case 2:  // insert a JSON token
                data.insert(at, kTokens[rng() % kTokens.size()]);
                break;
            case 3:  // erase a range
                if (!data.empty()) data.erase(at % data.size(), 1 + rng() % 16);
                break;
            case 4: {  // repeat a range (deep nesting, long values)
                if (data.empty()) break;
                const size_t from = at % data.size(), length = std::min<size_t>(1 + rng() % 8, data.size() - from);
                const std::string piece = data.substr(from, length);
                std::string repeated;
                for (int i = 0, n = 1 + static_cast<int>(rng() % 400); i < n; ++i) repeated += piece;
                data.insert(from, repeated);
                break;
            }
            case 5:  // truncate
                data.resize(at);
                break;
            default:  // a small integer's digits into a number's place
                data.insert(at, std::to_string(static_cast<std::int64_t>(rng())));
        }
    }
    return data;
}

struct Counts {
    std::map<std::string, long> runs;
    long findings = 0;
};

template <typename Expected, typename Call>
void expect(Counts& counts, const std::string& reader, const std::string& input, Call&& call) {
    ++counts.runs[reader];
    try {
        call();
    } catch (const Expected&) {
    } catch (const std::exception& e) {
        ++counts.findings;
        std::cout << "FINDING in " << reader << ": " << typeid(e).name() << ": " << e.what() << " (input of "
                  << input.size() << " bytes: " << input.substr(0, 120) << ")\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: yolox_deploy_fuzz SECONDS SEED SEED_FILE...\n";
        return 2;
    }
    const double seconds = std::stod(argv[1]);
    std::mt19937_64 rng(std::stoull(argv[2]));
    std::vector<std::string> json_seeds, onnx_seeds;
    for (int i = 3; i < argc; ++i) {
        const std::string text = read_file(argv[i]);
        (fs::path(argv[i]).extension() == ".onnx" ? onnx_seeds : json_seeds).push_back(text);
    }
    const fs::path folder = fs::temp_directory_path() / ("yolox_deploy_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(folder);
    { std::ofstream(folder / "model.onnx") << "not read by the deploy.json reader"; }
    Counts counts;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (!json_seeds.empty()) {
            const std::string text = mutate(json_seeds[rng() % json_seeds.size()], rng);
            { std::ofstream(folder / "deploy.json", std::ios::binary) << text; }
            expect<yolox_deploy::ModelFileError>(counts, "deploy.json", text,
                                                 [&] { yolox_deploy::detail::read_deployment(folder.string()); });
            const std::string& key = kMetadataKeys[rng() % kMetadataKeys.size()];
            expect<yolox_deploy::ModelFileError>(counts, "metadata", text, [&] {
                yolox_deploy::detail::parse_metadata({{key, text}});
            });
        }
        if (!onnx_seeds.empty()) {
            const std::string bytes = mutate(onnx_seeds[rng() % onnx_seeds.size()], rng);
            expect<std::invalid_argument>(counts, "onnx protobuf", bytes.substr(0, 16), [&] {
                yolox_deploy::detail::with_pixel_input(bytes, "images", {1, 3, 416, 416});
            });
        }
    }
    fs::remove_all(folder);
    std::cout << "fuzz: " << seconds << " s, seed " << argv[2];
    for (const auto& [reader, runs] : counts.runs) std::cout << ", " << reader << " " << runs << " executions";
    std::cout << ", " << counts.findings << " findings\n";
    return counts.findings ? 1 : 0;
}
