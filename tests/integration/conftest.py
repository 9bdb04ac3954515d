"""Integration tests use the shared fixtures of tests/conftest.py (a real Ray, a real S3)."""
