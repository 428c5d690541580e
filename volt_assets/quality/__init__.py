"""Quality gates: asset checks built from the table configuration."""
