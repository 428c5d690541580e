"""The lake: layout, storage, extraction from PostgreSQL, and the raw -> staging transform."""
