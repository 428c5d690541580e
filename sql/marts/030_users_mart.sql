-- One snapshot per day of every user known then (latest valid version, not deleted), with
-- the orders known then that are valid and not 'cancelled'. spend_rank: RANK() by
-- total_spent, 1 = biggest spender, ties share a rank (users without orders share the last).
CREATE TABLE IF NOT EXISTS marts.users_mart (
    dt              date          NOT NULL,     -- The snapshot's day: every valid user known at its end.
    user_id         bigint        NOT NULL,     -- The user (users.id).
    email           text,                       -- The user's email address (personal data).
    country         text,                       -- ISO 3166 country code.
    total_orders    bigint        NOT NULL,     -- Valid, not cancelled orders up to dt.
    total_spent     numeric(14,2) NOT NULL,     -- Sum of quantity * unit_price of those orders.
    first_order_at  timestamptz,                -- ordered_at of the user's first such order.
    last_order_at   timestamptz,                -- ordered_at of the user's latest such order.
    spend_rank      integer       NOT NULL,     -- Rank by total_spent that day, 1 = biggest spender; ties share a rank.
    PRIMARY KEY (dt, user_id)
);
CREATE INDEX IF NOT EXISTS users_mart_rank_idx ON marts.users_mart (dt, spend_rank);
CREATE INDEX IF NOT EXISTS users_mart_country_idx ON marts.users_mart (country, dt);
COMMENT ON TABLE marts.users_mart IS
    'Daily snapshot of every valid user with their orders so far (volt_assets marts/users_mart).';
