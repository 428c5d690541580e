"""Tests: integration/marts."""
