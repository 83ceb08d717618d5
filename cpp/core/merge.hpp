// Merging the detections of overlapping slices: NMS or greedy NMM, matching by IoU or IOS, per
// class or class-agnostic. Mirrors yolox_deploy/processing/merge.py (the NumPy reference), which
// reproduces the sahi package's postprocess: candidates from float32 metrics, score order with
// ties by x1, y1, x2, y2, and (recheck) sahi's re-check of each absorbed box, in double, against
// the merged box grown so far. Errors are std::invalid_argument with a one-line message.
#pragma once

#include <cstdint>
#include <vector>

namespace yolox_deploy::core {

enum class MergeKind { nms, greedy_nmm };
enum class MatchKind { iou, ios };

struct Merged {
    double x1, y1, x2, y2;  // xyxy, original-image pixels
    double score;
    std::int64_t class_id;
};

// xyxy: n x 4 doubles, row by row. Kept boxes in score order per class (classes ascending), or
// over all classes when class_agnostic.
std::vector<Merged> merge_detections(const double* xyxy, const double* scores, const std::int64_t* class_ids,
                                     std::int64_t n, MergeKind merge, MatchKind match, double threshold,
                                     bool class_agnostic, bool recheck);

}  // namespace yolox_deploy::core
