-- Revenue of each day from first_day to last_day and of the 7 days ending that day.
-- Parameters: %(first_day)s, %(last_day)s (dates).
-- A calendar fills the days without sales with 0, and starts 6 days before first_day so the
-- first rows add a full week too. Days whose mart partition was never materialised also read 0.
WITH calendar AS (
    SELECT day::date AS dt
    FROM generate_series(%(first_day)s::date - 6, %(last_day)s::date, interval '1 day') AS day
), daily AS (
    SELECT c.dt, coalesce(sum(s.revenue), 0) AS revenue
    FROM calendar c
    LEFT JOIN marts.daily_category_sales s ON s.dt = c.dt
    GROUP BY c.dt
), rolling AS (
    SELECT dt, revenue,
           sum(revenue) OVER (ORDER BY dt ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS revenue_7_days
    FROM daily
)
SELECT dt, revenue, revenue_7_days
FROM rolling
WHERE dt >= %(first_day)s
ORDER BY dt;
