"""Tests: unit/store."""
