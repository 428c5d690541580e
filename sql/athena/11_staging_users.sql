-- staging/users: one row per user id (its latest valid version of day dt).
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.staging_users (
  id              bigint,
  email           string,
  full_name       string,
  country         string,
  created_at      timestamp,       -- UTC
  updated_at      timestamp,
  -- Columns added by volt_assets (table_config.STAGING_EXTRA_FIELDS):
  _deleted        boolean,
  _extracted_at   timestamp
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/staging/users/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/staging/users/dt=${dt}/'
);
