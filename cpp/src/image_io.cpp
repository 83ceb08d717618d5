// Image files read with the Python package's checks (yolox_deploy/processing/images.py).
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "yolox_deploy/detector.hpp"

namespace yolox_deploy {
namespace {

// Bytes compared as unsigned char (a std::string's char is signed here).
bool same_byte(unsigned char a, char b) { return a == static_cast<unsigned char>(b); }

bool starts_with(const std::vector<unsigned char>& data, const std::string& prefix) {
    return data.size() >= prefix.size() && std::equal(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(prefix.size()),
                                                      prefix.begin(), same_byte);
}

bool tail_contains(const std::vector<unsigned char>& data, size_t tail, const std::string& marker) {
    const size_t from = data.size() > tail ? data.size() - tail : 0;
    return std::search(data.begin() + static_cast<std::ptrdiff_t>(from), data.end(), marker.begin(), marker.end(),
                       same_byte) != data.end();
}

// JPEG without its end-of-image marker, PNG without its IEND chunk.
bool looks_truncated(const std::vector<unsigned char>& data) {
    if (starts_with(data, "\xff\xd8")) return !tail_contains(data, 1024, "\xff\xd9");
    if (starts_with(data, std::string("\x89PNG\r\n\x1a\n", 8))) return !tail_contains(data, 16, "IEND");
    return false;
}

}  // namespace

cv::Mat read_image(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw InvalidInputError("image not found: " + path);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InvalidInputError("cannot read " + path + " (permission denied?)");
    const std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.empty()) throw InvalidInputError("image file is empty (0 bytes): " + path);
    if (looks_truncated(data))
        throw InvalidInputError("image file is truncated (no end marker): " + path + "; re-copy or re-encode it");
    cv::Mat image;
    try {
        image = cv::imdecode(data, cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
        image.release();
    }
    if (image.empty())
        throw InvalidInputError("cannot decode " + path + " as an image (supported: .jpg, .jpeg, .png, .bmp, .webp, "
                                ".tif, .tiff)");
    return image;
}

}  // namespace yolox_deploy
