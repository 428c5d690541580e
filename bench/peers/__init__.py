"""The peers and limits the project is measured against, each runnable as its own process
(`python -m bench.peers.NAME ...`) so its peak RSS is measured alone. Each prints one JSON
line `{"rows": ..., "bytes": ..., ...}` on stdout as its last line.

Connection settings come from the environment (POSTGRES_*, AWS_*), never from argv, so no
password shows in a process listing.
"""
