// Image files read with the Python package's checks (yolox_deploy/processing/images.py).
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <set>
#include <utility>

#include "errors.hpp"
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

std::uint32_t big_endian(const std::vector<unsigned char>& d, size_t at, int bytes) {
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | d[at + static_cast<size_t>(i)];
    return v;
}

std::uint32_t little_endian(const std::vector<unsigned char>& d, size_t at, int bytes) {
    std::uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | d[at + static_cast<size_t>(i)];
    return v;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> jpeg_size(const std::vector<unsigned char>& d) {
    static const std::set<int> sof = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF};
    size_t i = 2;
    while (i + 9 < d.size()) {
        if (d[i] != 0xFF) return std::nullopt;
        const int marker = d[i + 1];
        if (marker == 0xFF) {  // fill byte
            i += 1;
            continue;
        }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
            i += 2;
            continue;
        }
        if (sof.count(marker)) return std::make_pair(big_endian(d, i + 7, 2), big_endian(d, i + 5, 2));
        i += 2 + big_endian(d, i + 2, 2);
    }
    return std::nullopt;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> webp_size(const std::vector<unsigned char>& d) {
    auto chunk = [&](const char* name) { return d.size() >= 16 && std::equal(d.begin() + 12, d.begin() + 16, name, same_byte); };
    if (chunk("VP8X") && d.size() >= 30)
        return std::make_pair(1 + std::uint64_t{little_endian(d, 24, 3)}, 1 + std::uint64_t{little_endian(d, 27, 3)});
    if (chunk("VP8L") && d.size() >= 25) {
        const std::uint32_t bits = little_endian(d, 21, 4);
        return std::make_pair(1 + std::uint64_t{bits & 0x3FFF}, 1 + std::uint64_t{(bits >> 14) & 0x3FFF});
    }
    if (chunk("VP8 ") && d.size() >= 30)
        return std::make_pair(std::uint64_t{little_endian(d, 26, 2) & 0x3FFF}, std::uint64_t{little_endian(d, 28, 2) & 0x3FFF});
    return std::nullopt;
}

// (width, height) declared by a JPEG/PNG/BMP/GIF/WebP header, without decoding (as
// yolox_deploy/processing/imagesize.py); nothing for other formats or a header cut short.
std::optional<std::pair<std::uint64_t, std::uint64_t>> declared_size(const std::vector<unsigned char>& d) {
    if (starts_with(d, "\xff\xd8")) return jpeg_size(d);
    if (starts_with(d, std::string("\x89PNG\r\n\x1a\n", 8)) && d.size() >= 24)
        return std::make_pair(std::uint64_t{big_endian(d, 16, 4)}, std::uint64_t{big_endian(d, 20, 4)});
    if (starts_with(d, "BM") && d.size() >= 26) {
        const auto magnitude = [](std::uint32_t v) {  // abs() of a signed 32-bit value
            return v & 0x80000000u ? std::uint64_t{~v} + 1 : std::uint64_t{v};
        };
        return std::make_pair(magnitude(little_endian(d, 18, 4)), magnitude(little_endian(d, 22, 4)));
    }
    if (starts_with(d, "GIF8") && d.size() >= 10)
        return std::make_pair(std::uint64_t{little_endian(d, 6, 2)}, std::uint64_t{little_endian(d, 8, 2)});
    if (starts_with(d, "RIFF") && d.size() >= 12 && std::equal(d.begin() + 8, d.begin() + 12, "WEBP", same_byte))
        return webp_size(d);
    return std::nullopt;
}

std::int64_t default_max_pixels() {
    if (const char* text = std::getenv("YOLOX_DEPLOY_MAX_IMAGE_PIXELS")) {
        char* end = nullptr;
        const long long value = std::strtoll(text, &end, 10);
        if (end != text && *end == '\0' && value > 0) return value;
    }
    return kDefaultMaxImagePixels;
}

std::string with_commas(std::uint64_t value) {
    std::string digits = std::to_string(value), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

cv::Mat read_checked(const std::string& path, std::int64_t max_pixels) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw InvalidInputError("image not found: " + path);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InvalidInputError("cannot read " + path + " (permission denied?)");
    const std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.empty()) throw InvalidInputError("image file is empty (0 bytes): " + path);
    if (looks_truncated(data))
        throw InvalidInputError("image file is truncated (no end marker): " + path + "; re-copy or re-encode it");
    const std::uint64_t limit = static_cast<std::uint64_t>(max_pixels > 0 ? max_pixels : default_max_pixels());
    if (const auto size = declared_size(data); size && size->first * size->second > limit)
        throw InvalidInputError(std::filesystem::path(path).filename().string() + " declares " +
                                std::to_string(size->first) + "x" + std::to_string(size->second) +
                                " pixels, over the limit of " + with_commas(limit) + "; pass a larger max_pixels to "
                                "read_image (or set YOLOX_DEPLOY_MAX_IMAGE_PIXELS) if it is genuine");
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

}  // namespace

cv::Mat read_image(const std::string& path, std::int64_t max_pixels) {
    return detail::translated("reading " + path, [&] { return read_checked(path, max_pixels); });
}

}  // namespace yolox_deploy
