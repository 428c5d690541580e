-- quarantine/electrical_components: rows refused by validation on day dt. Every value is kept
-- as the (cleaned) text it arrived as, so a refused "abc" price is still readable; `_reasons`
-- lists every rule the row broke. The other tables' quarantine follows the same pattern.
-- The bucket's lifecycle expires quarantine/ after 30 days (infrastructure/README.md).
CREATE EXTERNAL TABLE IF NOT EXISTS volt_lake.quarantine_electrical_components (
  id              string,
  sku             string,
  name            string,
  category        string,
  manufacturer    string,
  description     string,
  price           string,
  currency        string,
  stock_quantity  string,
  voltage_rating  string,
  specs           string,
  image_filename  string,
  created_at      string,
  updated_at      string,
  deleted_at      string,
  -- Columns added by volt_assets (table_config.quarantine_schema):
  _reasons        array<string>,
  _extracted_at   timestamp
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://volt-data-lake/quarantine/electrical_components/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2025-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://volt-data-lake/quarantine/electrical_components/dt=${dt}/'
);
