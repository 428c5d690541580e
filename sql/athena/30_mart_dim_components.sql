-- mart/dim_components: the Parquet copy of marts.dim_components as of the end of day dt
-- (type 2 history: one current row per live component).
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.mart_dim_components (
  component_id    bigint,
  sku             string,
  name            string,
  category        string,
  manufacturer    string,
  price           decimal(12,2),
  currency        string,
  valid_from      timestamp,       -- UTC
  valid_to        timestamp,       -- NULL for the current row
  is_current      boolean
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/mart/dim_components/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/mart/dim_components/dt=${dt}/'
);
