"""The embedded local stack (PostgreSQL 18 and an S3 endpoint, both from PyPI) and the local
Dagster instance: for developer machines and tests, never deployed."""
