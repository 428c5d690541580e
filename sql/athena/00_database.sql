-- Glue/Athena catalogue of the Volt lake. Run the files of this folder in name order.
-- Every table reads Parquet with a hive partition `dt` (YYYY-MM-DD) through partition
-- projection: no crawler and no MSCK REPAIR; a new day is queryable as soon as it lands.
-- Replace `volt-data-lake` (S3_BUCKET_NAME) and the range start `2025-01-01`
-- (VOLT_PARTITIONS_START) in each file if yours differ.
CREATE DATABASE IF NOT EXISTS volt_lake
COMMENT 'Volt data lake: staging, quarantine and mart layers written by volt_assets';
