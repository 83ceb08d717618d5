"""Benchmarks (installed as yolox_deploy.benchmarks): the yolox-bench engine, the official
demo baseline, and standalone measurement scripts."""
