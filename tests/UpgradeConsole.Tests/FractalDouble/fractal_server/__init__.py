"""Test double of fractal-server (see ../README.md). The version is written by build_wheel.py."""
__VERSION__ = "0.0.0"
