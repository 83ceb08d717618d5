// C++-side checks of what the library promises (tests/cpp/test_cpp_parity.py runs this binary):
//   yolox_deploy_tests MODEL IMAGE_FOLDER
// - detect() from several threads at once on one Detector gives the serial answers, bit for bit;
// - the batch overload gives the single-image answers;
// - bad input is a yolox_deploy::Error with a one-line message, never a crash;
// - the core's merge of sliced detections (sahi's re-check quirk and its fix; random input; NaN).
#include <yolox_deploy/detector.hpp>

#include "../core/merge.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <stdexcept>
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

void check_merge() {
    namespace core = yolox_deploy::core;
    // IoU 0.71 of the first box with each other one; the grown box has IoU 0.56 with the third
    const double boxes[12] = {0, 4, 10, 14, 0, 4, 10, 18, 0, 0, 10, 14};
    const double scores[3] = {0.9, 0.8, 0.7};
    const std::int64_t classes[3] = {0, 0, 0};
    const auto quirk = core::merge_detections(boxes, scores, classes, 3, core::MergeKind::greedy_nmm,
                                              core::MatchKind::iou, 0.6, false, true);
    check(quirk.size() == 1 && quirk[0].y1 == 4 && quirk[0].y2 == 18 && quirk[0].score == 0.9,
          "merge: sahi's re-check drops the third box");
    const auto fixed = core::merge_detections(boxes, scores, classes, 3, core::MergeKind::greedy_nmm,
                                              core::MatchKind::iou, 0.6, false, false);
    check(fixed.size() == 1 && fixed[0].y1 == 0 && fixed[0].y2 == 18, "merge: without the re-check it is merged");
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> coord(0, 500), side(0, 80), score(0, 1);
    bool bounded = true;
    for (int round = 0; round < 50; ++round) {
        const int n = static_cast<int>(rng() % 300);
        std::vector<double> xyxy(4 * n), s(n);
        std::vector<std::int64_t> c(n);
        for (int i = 0; i < n; ++i) {
            xyxy[4 * i] = coord(rng), xyxy[4 * i + 1] = coord(rng);
            xyxy[4 * i + 2] = xyxy[4 * i] + side(rng), xyxy[4 * i + 3] = xyxy[4 * i + 1] + side(rng);  // 0-area too
            s[i] = score(rng), c[i] = static_cast<std::int64_t>(rng() % 4);
        }
        for (const auto kind : {core::MergeKind::nms, core::MergeKind::greedy_nmm})
            for (const auto match : {core::MatchKind::iou, core::MatchKind::ios})
                bounded &= core::merge_detections(xyxy.data(), s.data(), c.data(), n, kind, match, 0.5, round % 2,
                                                  round % 3 == 0).size() <= static_cast<size_t>(n);
    }
    check(bounded, "merge: random detections merge into at most as many");
    double nan_boxes[12];
    std::copy(boxes, boxes + 12, nan_boxes);
    nan_boxes[5] = std::numeric_limits<double>::quiet_NaN();
    expect_error<std::invalid_argument>([&] {
        core::merge_detections(nan_boxes, scores, classes, 3, core::MergeKind::nms, core::MatchKind::iou, 0.5, false,
                               true);
    }, "merge: a NaN box is refused");
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

    check_merge();

    std::cout << (failures ? "FAILED" : "passed") << " (" << failures << " failures)\n";
    return failures ? 1 : 0;
}
