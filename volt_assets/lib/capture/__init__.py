"""Capture: the source's versions of a day extracted exactly and added to raw."""
