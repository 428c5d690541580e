-- staging/orders: one row per order id (its latest valid version of day dt).
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.staging_orders (
  id              bigint,
  user_id         bigint,
  component_id    bigint,
  quantity        int,
  unit_price      decimal(12,2),
  currency        string,
  status          string,
  payment_method  string,
  ordered_at      timestamp,       -- UTC
  updated_at      timestamp,
  -- Columns added by volt_assets (table_config.STAGING_EXTRA_FIELDS):
  _deleted        boolean,
  _extracted_at   timestamp
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/staging/orders/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/staging/orders/dt=${dt}/'
);
