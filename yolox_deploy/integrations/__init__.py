"""Integrations with engines that run detection beyond one process (Ray Data, Triton).

Each module imports its engine only when used, with an error naming the pip extra.
"""
