// A complete application: detect on one image with an installed yolox_deploy (docs/cpp.md).
#include <yolox_deploy/detector.hpp>

#include <iostream>

int main(int argc, char** argv) try {
    if (argc != 3) return std::cerr << "usage: app MODEL IMAGE\n", 2;
    const yolox_deploy::Detector detector(argv[1]);  // .onnx, .xml or a yolox-tune folder
    for (const auto& d : detector.detect(yolox_deploy::read_image(argv[2])))
        std::cout << d.class_name << " " << d.score << " [" << d.x1 << ", " << d.y1 << ", " << d.x2 << ", " << d.y2 << "]\n";
    return 0;
} catch (const yolox_deploy::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
}
