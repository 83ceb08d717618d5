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
#include <cmath>
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
    // NMS keeps input boxes only, and no two kept boxes of one class overlap above the threshold
    bool nms_holds = true;
    for (int round = 0; round < 50; ++round) {
        const int n = 1 + static_cast<int>(rng() % 200);
        std::vector<double> xyxy(4 * n), s(n);
        std::vector<std::int64_t> c(n);
        for (int i = 0; i < n; ++i) {
            xyxy[4 * i] = coord(rng), xyxy[4 * i + 1] = coord(rng);
            xyxy[4 * i + 2] = xyxy[4 * i] + 1 + side(rng), xyxy[4 * i + 3] = xyxy[4 * i + 1] + 1 + side(rng);
            s[i] = score(rng), c[i] = static_cast<std::int64_t>(rng() % 3);
        }
        const bool agnostic = round % 2;
        const auto kept = core::merge_detections(xyxy.data(), s.data(), c.data(), n, core::MergeKind::nms,
                                                 core::MatchKind::iou, 0.5, agnostic, false);
        nms_holds &= !kept.empty();
        for (size_t a = 0; a < kept.size(); ++a) {
            bool found = false;
            for (int i = 0; i < n && !found; ++i)
                found = kept[a].x1 == xyxy[4 * i] && kept[a].y1 == xyxy[4 * i + 1] && kept[a].x2 == xyxy[4 * i + 2] &&
                        kept[a].y2 == xyxy[4 * i + 3] && kept[a].score == s[i] && kept[a].class_id == c[i];
            nms_holds &= found;
            for (size_t b = a + 1; b < kept.size(); ++b) {
                if (!agnostic && kept[a].class_id != kept[b].class_id) continue;
                const double iw = std::max(0.0, std::min(kept[a].x2, kept[b].x2) - std::max(kept[a].x1, kept[b].x1));
                const double ih = std::max(0.0, std::min(kept[a].y2, kept[b].y2) - std::max(kept[a].y1, kept[b].y1));
                const double area = [](const core::Merged& m) { return (m.x2 - m.x1) * (m.y2 - m.y1); }(kept[a]) +
                                    (kept[b].x2 - kept[b].x1) * (kept[b].y2 - kept[b].y1);
                nms_holds &= iw * ih / (area - iw * ih) <= 0.5 + 1e-6;
            }
        }
    }
    check(nms_holds, "merge: NMS keeps input boxes, none overlapping another of its class above the threshold");
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
    if (paths.size() < 2) {
        std::cout << "FAILED: " << argv[2] << " holds " << paths.size() << " .jpg images; the checks need 2 or more\n";
        return 1;
    }
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
    const auto backends = yolox_deploy::compiled_backends();
    if (std::find(backends.begin(), backends.end(), "onnxruntime") != backends.end())
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
    // its BGR copy made by hand (three equal planes), not by the conversion under test
    cv::Mat gray_bgr;
    cv::merge(std::vector<cv::Mat>{gray, gray, gray}, gray_bgr);
    check(detector.letterbox(gray).first == detector.letterbox(gray_bgr).first &&
              same(detector.detect(gray), detector.detect(gray_bgr)),
          "a gray image gives the input and answers of its three-plane BGR copy");
    check(!same(detector.detect(gray), serial[0]) || serial[0].empty(), "a gray image is not its colour original");
    check(same(detector.detect(bgra), serial[0]), "a BGRA image gives its BGR answers");
    // a view into a larger image (rows with padding) gives the answers of a copy
    const cv::Mat roi = images[1](cv::Rect(3, 5, images[1].cols - 10, images[1].rows - 9));
    check(same(detector.detect(roi), detector.detect(roi.clone())), "a ROI view gives the answers of its copy");

    // thresholds change without reloading, and are checked
    {
        yolox_deploy::Detector tunable(model);
        const auto before = tunable.detect(images[0]);
        yolox_deploy::Thresholds strict = tunable.thresholds();
        strict.conf = 0.6f, strict.max_det = 1;
        tunable.set_thresholds(strict);
        const auto after = tunable.detect(images[0]);
        bool subset = after.size() <= 1;
        for (const auto& d : after) subset &= d.score >= 0.6f;
        check(subset && (before.empty() || before[0].score < 0.6f || (!after.empty() && after[0].score == before[0].score)),
              "set_thresholds: conf 0.6 and max_det 1 apply on the next detect()");
        yolox_deploy::Thresholds bad = strict;
        bad.iou = 1.5f;
        expect_error<yolox_deploy::InvalidInputError>([&] { tunable.set_thresholds(bad); }, "set_thresholds: iou > 1");
        check(tunable.thresholds().iou == strict.iou, "a refused set_thresholds changes nothing");
    }
    // class names given by the caller replace the metadata's; a wrong count is one line
    {
        yolox_deploy::DetectorOptions named;
        for (int c = 0; c < 80; ++c) named.class_names.push_back("thing" + std::to_string(c));
        const auto renamed = yolox_deploy::Detector(model, named).detect(images[0]);
        bool same_boxes = renamed.size() == serial[0].size();
        for (size_t i = 0; same_boxes && i < renamed.size(); ++i)
            same_boxes = renamed[i].class_name == "thing" + std::to_string(renamed[i].class_id) &&
                         renamed[i].score == serial[0][i].score;
        check(same_boxes, "DetectorOptions::class_names names the classes");
        named.class_names.resize(3);
        expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::Detector(model, named).detect(images[0]); },
                                                      "3 class names for an 80-class model");
    }
    // batches of 2..8 (dynamic-batch models): the answers of single images, to the tolerances of the parity tests
    if (detector.info().batch_size == 1 && model.find("dynamic") != std::string::npos) {
        bool batches_hold = true;
        for (int b = 2; b <= 8; ++b) {
            yolox_deploy::DetectorOptions options;
            options.batch_size = b;
            const yolox_deploy::Detector batched_detector(model, options);
            const auto answers = batched_detector.detect(images);
            batches_hold &= answers.size() == serial.size();
            for (size_t i = 0; batches_hold && i < serial.size(); ++i) {
                batches_hold &= answers[i].size() == serial[i].size();
                for (size_t k = 0; batches_hold && k < serial[i].size(); ++k)
                    batches_hold &= answers[i][k].class_id == serial[i][k].class_id &&
                                    std::fabs(answers[i][k].score - serial[i][k].score) <= 1e-5f &&
                                    std::fabs(answers[i][k].x1 - serial[i][k].x1) <= 1e-3f &&
                                    std::fabs(answers[i][k].y2 - serial[i][k].y2) <= 1e-3f;
            }
        }
        check(batches_hold, "batches of 2..8 (the last padded) give the single-image answers");
    }
    yolox_deploy::DetectorOptions huge_batch;
    huge_batch.batch_size = 100000;
    expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::Detector(model, huge_batch); }, "batch size 100000");
    yolox_deploy::DetectorOptions huge_size;
    huge_size.input_size = std::make_pair(1 << 20, 1 << 20);
    expect_error<yolox_deploy::InvalidInputError>([&] { yolox_deploy::Detector(model, huge_size); }, "input size 2^20");

    check_merge();

    std::cout << (failures ? "FAILED" : "passed") << " (" << failures << " failures)\n";
    return failures ? 1 : 0;
}
