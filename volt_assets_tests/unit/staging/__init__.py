"""Tests: unit/staging."""
