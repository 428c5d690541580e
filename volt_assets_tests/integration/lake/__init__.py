"""Tests: integration/lake."""
