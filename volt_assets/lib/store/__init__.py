"""The lake's storage on S3: layout of keys, atomic folder writes, locks, the bucket's policies."""
