"""The streaming benchmark (not part of the test suite): bench/run.py, docs/performance.md."""
