-- The Volt operational schema, exactly as the shop's app has it (README: "The source").
-- The app enforces no quality: every column but the keys and timestamps may hold nulls,
-- negative or absurd numbers, blank or odd text. Rows are updated in place
-- (updated_at = now()) and can be hard-deleted.
CREATE TABLE IF NOT EXISTS electrical_components (
    id              bigint PRIMARY KEY,
    sku             text UNIQUE NOT NULL,
    name            text,
    category        text,
    manufacturer    text,
    description     text,
    price           numeric(12,2),
    currency        char(3),
    stock_quantity  integer,
    voltage_rating  numeric(10,2),
    specs           jsonb,
    image_filename  text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);

CREATE TABLE IF NOT EXISTS users (
    id          bigint PRIMARY KEY,
    email       text,
    full_name   text,
    country     char(2),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    id              bigint PRIMARY KEY,
    user_id         bigint,
    component_id    bigint,
    quantity        integer,
    unit_price      numeric(12,2),
    currency        char(3),
    status          text,
    payment_method  text,
    ordered_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Every cursor column is indexed: a daily partition reads [D, D+1) by an index range
-- scan, so its cost follows the day's rows, not the table's size.
CREATE INDEX IF NOT EXISTS electrical_components_updated_at_idx ON electrical_components (updated_at);
CREATE INDEX IF NOT EXISTS users_updated_at_idx ON users (updated_at);
CREATE INDEX IF NOT EXISTS orders_updated_at_idx ON orders (updated_at);
CREATE INDEX IF NOT EXISTS orders_ordered_at_idx ON orders (ordered_at);
