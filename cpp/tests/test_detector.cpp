// C++-side checks of what the library promises (tests/cpp/test_cpp_parity.py runs this binary):
//   yolox_deploy_tests MODEL IMAGE_FOLDER
// - detect() from several threads at once on one Detector gives the serial answers, bit for bit;
// - the batch overload gives the single-image answers;
// - bad input is a yolox_deploy::Error with a one-line message, never a crash.
#include <yolox_deploy/detector.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using yolox_deploy::Detection;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::cout << (ok ? "ok: " : "FAILED: ") << what << "\n";
    if (!ok) ++failures;
}

bool same(const std::vector<Detection>& a, const std::vector<Detection>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], offsetof(Detection, class_id) + sizeof(int)) != 0 ||
            a[i].class_name != b[i].class_name)
            return false;
    return true;
}

template <typename E>
void expect_error(const std::function<void()>& action, const std::string& what) {
    try {
        action();
        check(false, what + " (no error)");
    } catch (const E& e) {
        const std::string message = e.what();
        check(!message.empty() && message.find('\n') == std::string::npos, what + ": " + message);
    } catch (const std::exception& e) {
        check(false, what + " (wrong exception type: " + e.what() + ")");
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: yolox_deploy_tests MODEL IMAGE_FOLDER\n";
        return 2;
    }
    const std::string model = argv[1];
    std::vector<std::string> paths;
    for (const auto& entry : fs::directory_iterator(argv[2]))
        if (entry.path().extension() == ".jpg") paths.push_back(entry.path().string());
    std::sort(paths.begin(), paths.end());
    paths.resize(std::min<size_t>(paths.size(), 12));
    std::vector<cv::Mat> images;
    for (const auto& p : paths) images.push_back(yolox_deploy::read_image(p));

    const yolox_deploy::Detector detector(model);
    std::vector<std::vector<Detection>> serial;
    for (const auto& image : images) serial.push_back(detector.detect(image));

    // several threads, one Detector, each thread through every image in its own order, twice
    constexpr int kThreads = 4;
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 2; ++round)
                for (size_t k = 0; k < images.size(); ++k) {
                    const size_t i = (k * (t + 1) + round) % images.size();
                    if (!same(detector.detect(images[i]), serial[i])) ++mismatches;
                }
        });
    for (auto& thread : threads) thread.join();
    check(mismatches == 0, std::to_string(kThreads) + " threads on one Detector give the serial answers (" +
                               std::to_string(mismatches.load()) + " mismatches over " +
                               std::to_string(kThreads * 2 * images.size()) + " calls)");

    const auto batched = detector.detect(images);
    bool all_same = batched.size() == serial.size();
    for (size_t i = 0; all_same && i < serial.size(); ++i) all_same = same(batched[i], serial[i]);
    check(all_same, "the batch overload gives the single-image answers");

    // one-line errors for bad input
    expect_error<yolox_deploy::InvalidInputError>([&] { detector.detect(cv::Mat()); }, "empty image");
    expect_error<yolox_deploy::InvalidInputError>([&] { detector.detect(cv::Mat(20, 20, CV_32FC3)); }, "float image");
    expect_error<yolox_deploy::InvalidInputError>([&] { detector.detect(cv::Mat(20, 20, CV_8UC2)); }, "2-channel image");
    expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::read_image("/nonexistent.jpg"); }, "missing image");
    expect_error<yolox_deploy::ModelFileError>([&] { yolox_deploy::Detector("/nonexistent.onnx"); }, "missing model");
    expect_error<yolox_deploy::ModelFileError>([&] { yolox_deploy::Detector(paths[0] + ".unknown"); },
                                               "unknown model suffix");
    expect_error<yolox_deploy::ModelFileError>([&] { yolox_deploy::Detector(paths[0], {"onnxruntime"}); },
                                               "a JPEG given as an ONNX model");
    yolox_deploy::DetectorOptions bad_size;
    bad_size.input_size = std::make_pair(415, 416);
    expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::Detector(model, bad_size); },
                                                  "an input size the static model does not have");
    yolox_deploy::DetectorOptions bad_conf;
    bad_conf.conf = 1.5f;
    expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::Detector(model, bad_conf); }, "conf > 1");

    // gray and BGRA images are converted as the Python package converts them
    cv::Mat gray;
    cv::Mat bgra;
    cv::cvtColor(images[0], gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(images[0], bgra, cv::COLOR_BGR2BGRA);
    cv::Mat gray_bgr;
    cv::cvtColor(gray, gray_bgr, cv::COLOR_GRAY2BGR);
    check(same(detector.detect(gray), detector.detect(gray_bgr)), "a gray image gives the answers of its BGR copy");
    check(same(detector.detect(bgra), serial[0]), "a BGRA image gives its BGR answers");
    // a view into a larger image (rows with padding) gives the answers of a copy
    const cv::Mat roi = images[1](cv::Rect(3, 5, images[1].cols - 10, images[1].rows - 9));
    check(same(detector.detect(roi), detector.detect(roi.clone())), "a ROI view gives the answers of its copy");

    std::cout << (failures ? "FAILED" : "passed") << " (" << failures << " failures)\n";
    return failures ? 1 : 0;
}
