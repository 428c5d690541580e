-- mart/daily_category_sales: the Parquet copy of marts.daily_category_sales for day dt
-- (valid orders not 'cancelled', by the UTC day of ordered_at). The mart's own `dt` column
-- is the partition column here.
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.mart_daily_category_sales (
  category        string,
  orders_count    bigint,
  units_sold      bigint,
  revenue         decimal(14,2),
  avg_unit_price  decimal(12,2)
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/mart/daily_category_sales/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/mart/daily_category_sales/dt=${dt}/'
);
