"""The streaming benchmark (not part of the test suite): bench/run.py, README "Performance"."""
