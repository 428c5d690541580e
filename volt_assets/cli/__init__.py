"""`volt-assets`: the project's own commands (stack, seed, demo, bucket, lake sql, presign, serve)."""
