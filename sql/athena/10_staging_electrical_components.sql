-- staging/electrical_components: one row per component id (its latest version of day dt);
-- a component hard-deleted that day is a tombstone row (id, _deleted = true, the rest NULL).
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.staging_electrical_components (
  id              bigint,
  sku             string,
  name            string,
  category        string,
  manufacturer    string,
  description     string,
  price           decimal(12,2),
  currency        string,
  stock_quantity  int,
  voltage_rating  decimal(10,2),
  specs           string,          -- JSON text, exactly as the source wrote it
  image_filename  string,
  created_at      timestamp,       -- UTC
  updated_at      timestamp,
  deleted_at      timestamp,
  -- Columns added by volt_assets (table_config.STAGING_EXTRA_FIELDS):
  _deleted        boolean,
  _extracted_at   timestamp
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/staging/electrical_components/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/staging/electrical_components/dt=${dt}/'
);
