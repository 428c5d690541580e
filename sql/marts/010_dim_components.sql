-- Type 2 history of the catalogue. A component gets a new version when its name, category,
-- manufacturer, price or currency change; a deleted component's last version is closed and
-- it has no current row. sku is type 1: every version shows the latest known sku.
CREATE TABLE IF NOT EXISTS marts.dim_components (
    component_id  bigint        NOT NULL,       -- The component (electrical_components.id).
    sku           text,                         -- Latest known sku (type 1: the same on every version).
    name          text          NOT NULL,       -- Product name in this version.
    category      text,                         -- Category in this version.
    manufacturer  text,                         -- Manufacturer in this version.
    price         numeric(12,2) NOT NULL,       -- List price in this version, in `currency`.
    currency      char(3)       NOT NULL,       -- ISO 4217 currency code of `price`.
    valid_from    timestamptz   NOT NULL,       -- When this version took effect (its updated_at).
    valid_to      timestamptz,                  -- When the next version or the delete took effect; null while current.
    is_current    boolean       NOT NULL,       -- True for the one open version of a live component.
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
