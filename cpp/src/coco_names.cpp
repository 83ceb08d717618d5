// The 80 COCO class names (yolox_deploy/coco.py), for 80-class models that carry no names.
#include "model_info.hpp"

namespace yolox_deploy::detail {

const std::vector<std::string>& default_class_names(std::int64_t num_classes) {
    static const std::vector<std::string> coco = {
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
        "scissors", "teddy bear", "hair drier", "toothbrush"
    };
    if (num_classes == static_cast<std::int64_t>(coco.size())) return coco;
    thread_local std::vector<std::string> names;
    if (static_cast<std::int64_t>(names.size()) != num_classes) {
        names.clear();
        for (std::int64_t i = 0; i < num_classes; ++i) names.push_back("class" + std::to_string(i));
    }
    return names;
}

}  // namespace yolox_deploy::detail
