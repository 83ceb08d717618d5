// Which sources this build of the core came from: the SHA-256 that setup.py and CMake both compute
// over cpp/core (each file's name and SHA-256, in name order) and pass as YOLOX_DEPLOY_CORE_SHA256.
// The Python module and the C++ library report it, and a test checks both against the tree.
#pragma once

#ifndef YOLOX_DEPLOY_CORE_SHA256
#error "define YOLOX_DEPLOY_CORE_SHA256 (setup.py and cpp/CMakeLists.txt compute it from cpp/core)"
#endif

namespace yolox_deploy::core {

inline const char* sources_sha256() { return YOLOX_DEPLOY_CORE_SHA256; }

}  // namespace yolox_deploy::core
