-- Revenue, orders and units per calendar month (UTC), and the growth of revenue on the month
-- before, in percent rounded to 2 decimals (NULL for the first month or after a month of 0).
-- No parameters: every month the mart holds.
WITH monthly AS (
    SELECT date_trunc('month', dt)::date AS month,
           sum(revenue) AS revenue, sum(orders_count) AS orders_count, sum(units_sold) AS units_sold
    FROM marts.daily_category_sales
    GROUP BY 1
), with_previous AS (
    SELECT monthly.*, lag(revenue) OVER (ORDER BY month) AS previous_revenue
    FROM monthly
)
SELECT month, revenue, orders_count, units_sold, previous_revenue,
       round(100 * (revenue - previous_revenue) / nullif(previous_revenue, 0), 2) AS revenue_growth_pct
FROM with_previous
ORDER BY month;
