"""Dagster assets, built from the table configuration (one factory per layer)."""
