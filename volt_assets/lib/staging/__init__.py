"""Staging: raw read back as text, typed by the rules, one row per key, written as Parquet."""
