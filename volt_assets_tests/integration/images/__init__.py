"""Tests: integration/images."""
