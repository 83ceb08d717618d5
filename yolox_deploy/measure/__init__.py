"""The measuring engine of yolox-bench and yolox-tune: configurations, timing, accuracy, reports."""
