"""Fault-injection harness for the reliability tests (README: Reliability).

- `tcp.TcpProxy`: a TCP proxy that delays, refuses or drops connections (PostgreSQL);
- `s3.S3FaultProxy`: an HTTP-aware S3 proxy answering 500/503/SlowDown for a seeded share
  of requests, resetting connections, or holding a chosen request (a kill point);
- `runs`: CLI and forked materialisations that can be SIGKILLed, and a fail-fast probe;
- `lake`: reading the lake as a manifest-following reader does, and comparing two lakes;
- `dataset`: a deterministic shop, for comparing a disturbed run with an undisturbed one;
- `env`: a twin database + bucket, and switching os.environ between environments.
"""
