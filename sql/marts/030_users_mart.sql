-- One snapshot per day of every user known then (latest valid version, not deleted), with
-- the orders known then that are valid and not 'cancelled'. spend_rank: RANK() by
-- total_spent, 1 = biggest spender, ties share a rank (users without orders share the last).
CREATE TABLE IF NOT EXISTS marts.users_mart (
    dt              date          NOT NULL,
    user_id         bigint        NOT NULL,
    email           text,
    country         text,
    total_orders    bigint        NOT NULL,
    total_spent     numeric(14,2) NOT NULL,
    first_order_at  timestamptz,
    last_order_at   timestamptz,
    spend_rank      integer       NOT NULL,
    PRIMARY KEY (dt, user_id)
);
CREATE INDEX IF NOT EXISTS users_mart_rank_idx ON marts.users_mart (dt, spend_rank);
CREATE INDEX IF NOT EXISTS users_mart_country_idx ON marts.users_mart (country, dt);
COMMENT ON TABLE marts.users_mart IS
    'Daily snapshot of every valid user with their orders so far (volt_assets marts/users_mart).';
