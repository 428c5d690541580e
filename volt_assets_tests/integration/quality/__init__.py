"""Tests: integration/quality."""
