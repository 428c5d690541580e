-- The same sales as daily_category_sales, per component (orders without a component_id are
-- only in the category mart, under 'unknown'). category is the component's as of dt.
CREATE TABLE IF NOT EXISTS marts.daily_component_sales (
    dt            date          NOT NULL,       -- UTC day of ordered_at.
    component_id  bigint        NOT NULL,       -- The component (electrical_components.id).
    category      text          NOT NULL,       -- The component's category as of dt.
    orders_count  bigint        NOT NULL,       -- Orders that day.
    units_sold    bigint        NOT NULL,       -- Sum of quantity.
    revenue       numeric(14,2) NOT NULL,       -- Sum of quantity * unit_price, in the orders' currencies.
    PRIMARY KEY (dt, component_id)
);
CREATE INDEX IF NOT EXISTS daily_component_sales_category_idx ON marts.daily_component_sales (category, dt);
COMMENT ON TABLE marts.daily_component_sales IS
    'Daily sales per component (volt_assets marts/daily_component_sales); amounts in the orders'' own currencies.';
