-- Sales per category and UTC day of ordered_at, from orders as the lake knew them at the end
-- of that day: valid, not hard-deleted, status not 'cancelled'. Orders whose component was
-- unknown then (or has no category) count under 'unknown'.
-- avg_unit_price = revenue / units_sold, rounded half up to cents (the average price paid per unit).
CREATE TABLE IF NOT EXISTS marts.daily_category_sales (
    dt              date          NOT NULL,     -- UTC day of ordered_at.
    category        text          NOT NULL,     -- Component category, 'unknown' when the component was unknown.
    orders_count    bigint        NOT NULL,     -- Orders that day.
    units_sold      bigint        NOT NULL,     -- Sum of quantity.
    revenue         numeric(14,2) NOT NULL,     -- Sum of quantity * unit_price, in the orders' currencies.
    avg_unit_price  numeric(12,2) NOT NULL,     -- revenue / units_sold, rounded half up to cents.
    PRIMARY KEY (dt, category)
);
CREATE INDEX IF NOT EXISTS daily_category_sales_category_idx ON marts.daily_category_sales (category, dt);
COMMENT ON TABLE marts.daily_category_sales IS
    'Daily sales per category (volt_assets marts/daily_category_sales); amounts in the orders'' own currencies.';
