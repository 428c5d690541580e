"""Tests: unit/capture."""
