-- Average order value per country: everything the country's users spent up to the end of day
-- %(dt)s divided by their orders (valid, not cancelled), from that day's users_mart snapshot.
-- Parameter: %(dt)s (a date whose users_mart partition is loaded).
-- Country is each user's as known that day. Users without orders count in `customers` only
-- when they ordered; NULL country reads 'unknown'.
SELECT coalesce(country, 'unknown') AS country,
       count(*) FILTER (WHERE total_orders > 0) AS customers,
       sum(total_orders) AS orders_count,
       sum(total_spent) AS revenue,
       round(sum(total_spent) / nullif(sum(total_orders), 0), 2) AS avg_order_value
FROM marts.users_mart
WHERE dt = %(dt)s
GROUP BY 1
HAVING sum(total_orders) > 0
ORDER BY avg_order_value DESC, country;
