"""The marts: analytical tables in PostgreSQL schema `marts`, built from the staging history in
the lake with DuckDB, each day also copied to `mart/{mart}/dt=D/` (README: "The marts")."""
