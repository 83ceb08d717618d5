// The library's promise that every error is a yolox_deploy::Error: what a runtime, the standard
// library or OpenCV throws is turned into one at the public API's edge, with one line.
#pragma once

#include <opencv2/core.hpp>

#include <filesystem>
#include <new>
#include <string>

#include "backend.hpp"
#include "yolox_deploy/detector.hpp"

namespace yolox_deploy::detail {

// Runs `call`; a yolox_deploy::Error passes through, anything else becomes one naming `what`
// (e.g. "opening model.onnx"): out of memory, a filesystem error, an OpenCV or runtime exception.
template <typename Call>
auto translated(const std::string& what, Call&& call) -> decltype(call()) {
    try {
        return call();
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw Error("out of memory " + what + "; use smaller images, a smaller batch or a smaller input size");
    } catch (const std::filesystem::filesystem_error& e) {
        throw ModelFileError("cannot read a file " + what + " (" + first_line(e.code().message()) + ": " +
                             e.path1().string() + ")");
    } catch (const cv::Exception& e) {
        throw InvalidInputError("OpenCV failed " + what + " (" + first_line(e.err) + ")");
    } catch (const std::exception& e) {
        throw Error("failed " + what + " (" + first_line(e.what()) + ")");
    }
}

}  // namespace yolox_deploy::detail
