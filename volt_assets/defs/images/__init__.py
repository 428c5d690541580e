"""Component pictures in the lake, presigned picture URLs (CLI and HTTP), landing-file and
run-failure sensors."""
