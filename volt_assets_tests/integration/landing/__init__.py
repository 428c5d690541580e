"""Tests: integration/landing."""
