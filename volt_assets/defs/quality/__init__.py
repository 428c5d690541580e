"""Data quality: asset checks built from the table configuration, and the quality report.

- `raw_checks`: source reconciliation and raw file presence, evaluated in the raw step;
- `staging_checks`: the quarantine gate, row accounting and one check per rule, evaluated day
  by day inside the staging step (`StagingQuality`);
- `references`, `marts`, `freshness`: standalone checks, wired in `defs.py`;
- `rulebook` (rules -> checks and severities), `outcome` (per-day results -> one check
  result), `report` (`quality/{table}/dt=D/report.json`), `gate` (the blocking gate).
"""
