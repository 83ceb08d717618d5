"""Command-line tools: yolox-export, yolox-detect, yolox-eval."""
