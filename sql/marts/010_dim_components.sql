-- Type 2 history of the catalogue. A component gets a new version when its name, category,
-- manufacturer, price or currency change; a deleted component's last version is closed and
-- it has no current row. sku is type 1: every version shows the latest known sku.
CREATE TABLE IF NOT EXISTS marts.dim_components (
    component_id  bigint        NOT NULL,
    sku           text,
    name          text          NOT NULL,
    category      text,
    manufacturer  text,
    price         numeric(12,2) NOT NULL,
    currency      char(3)       NOT NULL,
    valid_from    timestamptz   NOT NULL,
    valid_to      timestamptz,
    is_current    boolean       NOT NULL,
    PRIMARY KEY (component_id, valid_from),
    CONSTRAINT dim_components_current_is_open CHECK (is_current = (valid_to IS NULL)),
    CONSTRAINT dim_components_valid_span CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- One current row per live component.
CREATE UNIQUE INDEX IF NOT EXISTS dim_components_current_uq
    ON marts.dim_components (component_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_components_sku_idx ON marts.dim_components (sku);
COMMENT ON TABLE marts.dim_components IS
    'Type 2 history of electrical_components as the lake knew it at the end of the latest loaded day (volt_assets marts/dim_components).';
