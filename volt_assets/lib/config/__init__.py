"""What the lake is told: tables.yaml read and checked, the daily partitions, the catalogue of columns."""
