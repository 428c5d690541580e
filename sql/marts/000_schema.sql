-- The marts schema (README: "The marts"). Every file here is idempotent (IF NOT EXISTS) and
-- applied in file-name order by the marts IO manager before each load: the tables' types,
-- keys and indexes come from these files, never from the data.
CREATE SCHEMA IF NOT EXISTS marts;
