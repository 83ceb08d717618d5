#include "merge.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace yolox_deploy::core {
namespace {

template <typename T>
T metric(const T* a, const T* b, MatchKind match) {
    const T x1 = std::max(a[0], b[0]), y1 = std::max(a[1], b[1]);
    const T x2 = std::min(a[2], b[2]), y2 = std::min(a[3], b[3]);
    const T inter = std::max(T(0), x2 - x1) * std::max(T(0), y2 - y1);
    const T area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
    const T denominator = match == MatchKind::ios ? std::min(area_a, area_b) : area_a + area_b - inter;
    return denominator > T(0) ? inter / denominator : T(0);
}

// Indices of `part` in score-descending order, ties by x1, y1, x2, y2 (all in float32).
std::vector<std::int64_t> score_order(const std::vector<std::int64_t>& part, const std::vector<float>& boxes32,
                                      const std::vector<float>& scores32) {
    std::vector<std::int64_t> order(part.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
        const std::int64_t i = part[a], j = part[b];
        if (scores32[i] != scores32[j]) return scores32[i] > scores32[j];
        for (int k = 0; k < 4; ++k)
            if (boxes32[4 * i + k] != boxes32[4 * j + k]) return boxes32[4 * i + k] < boxes32[4 * j + k];
        return false;
    });
    return order;
}

}  // namespace

std::vector<Merged> merge_detections(const double* xyxy, const double* scores, const std::int64_t* class_ids,
                                     std::int64_t n, MergeKind merge, MatchKind match, double threshold,
                                     bool class_agnostic, bool recheck) {
    if (n < 0) throw std::invalid_argument("merge: a negative number of detections");
    for (std::int64_t i = 0; i < 4 * n; ++i)
        if (!std::isfinite(xyxy[i])) throw std::invalid_argument("merge takes finite boxes and scores (NaN or inf given)");
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(scores[i])) throw std::invalid_argument("merge takes finite boxes and scores (NaN or inf given)");
    std::vector<float> boxes32(static_cast<std::size_t>(4 * n)), scores32(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < 4 * n; ++i) boxes32[i] = static_cast<float>(xyxy[i]);
    for (std::int64_t i = 0; i < n; ++i) scores32[i] = static_cast<float>(scores[i]);
    std::map<std::int64_t, std::vector<std::int64_t>> parts;
    for (std::int64_t i = 0; i < n; ++i) parts[class_agnostic ? 0 : class_ids[i]].push_back(i);
    const float threshold32 = static_cast<float>(threshold);
    std::vector<Merged> out;
    for (const auto& [_, part] : parts) {
        const std::vector<std::int64_t> order = score_order(part, boxes32, scores32);
        std::vector<char> suppressed(part.size(), 0);
        for (std::size_t r = 0; r < order.size(); ++r) {
            const std::int64_t local = order[r];
            if (suppressed[local]) continue;
            const std::int64_t keep = part[local];
            Merged m{xyxy[4 * keep], xyxy[4 * keep + 1], xyxy[4 * keep + 2], xyxy[4 * keep + 3], scores[keep],
                     class_ids[keep]};
            if (merge == MergeKind::nms) {  // only the lower boxes still standing are measured
                for (std::size_t q = r + 1; q < order.size(); ++q) {
                    const std::int64_t other = order[q];
                    if (!suppressed[other] &&
                        metric(&boxes32[4 * keep], &boxes32[4 * part[other]], match) >= threshold32)
                        suppressed[other] = 1;
                }
                out.push_back(m);
                continue;
            }
            std::vector<std::int64_t> absorbed;
            for (std::size_t q = r + 1; q < order.size(); ++q) {
                const std::int64_t other = order[q];
                if (!suppressed[other] &&
                    metric(&boxes32[4 * keep], &boxes32[4 * part[other]], match) >= threshold32)
                    absorbed.push_back(other);
            }
            for (const std::int64_t other : absorbed) suppressed[other] = 1;
            for (const std::int64_t other : absorbed) {
                const std::int64_t j = part[other];
                const double grown[4] = {m.x1, m.y1, m.x2, m.y2};
                if (recheck && metric(grown, &xyxy[4 * j], match) < threshold) continue;
                m.x1 = std::min(m.x1, xyxy[4 * j]);
                m.y1 = std::min(m.y1, xyxy[4 * j + 1]);
                m.x2 = std::max(m.x2, xyxy[4 * j + 2]);
                m.y2 = std::max(m.y2, xyxy[4 * j + 3]);
                if (!(m.score > scores[j])) m.class_id = class_ids[j];
                m.score = std::max(m.score, scores[j]);
            }
            out.push_back(m);
        }
    }
    return out;
}

}  // namespace yolox_deploy::core
