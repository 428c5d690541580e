-- mart/users_mart: the Parquet copy of marts.users_mart, one snapshot per day dt of every
-- valid user known then. The mart's own `dt` column is the partition column here.
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.mart_users_mart (
  user_id         bigint,
  email           string,
  country         string,
  total_orders    bigint,
  total_spent     decimal(14,2),
  first_order_at  timestamp,       -- UTC
  last_order_at   timestamp,
  spend_rank      int              -- 1 = biggest spender; ties share a rank
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/mart/users_mart/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/mart/users_mart/dt=${dt}/'
);
