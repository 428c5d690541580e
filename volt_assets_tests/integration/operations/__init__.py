"""Tests: integration/operations."""
