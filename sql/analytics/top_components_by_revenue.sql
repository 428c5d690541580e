-- Top 10 components by revenue in each category, over the days first_day..last_day (inclusive).
-- Parameters: %(first_day)s, %(last_day)s (dates).
-- A component counts in the category it had on each day it sold (marts.daily_component_sales);
-- sku and name are its latest version's, even when it has been deleted since. Ties on revenue
-- are broken by component_id so each category shows exactly 10 rows (or fewer).
-- Revenue adds amounts in the orders' own currencies (no FX conversion in the marts).
WITH revenue AS (
    SELECT category, component_id, sum(units_sold) AS units_sold, sum(revenue) AS revenue
    FROM marts.daily_component_sales
    WHERE dt BETWEEN %(first_day)s AND %(last_day)s
    GROUP BY category, component_id
), ranked AS (
    SELECT revenue.*,
           row_number() OVER (PARTITION BY category ORDER BY revenue DESC, component_id) AS revenue_rank
    FROM revenue
)
SELECT r.category, r.revenue_rank, r.component_id, d.sku, d.name, r.units_sold, r.revenue
FROM ranked r
LEFT JOIN LATERAL (
    SELECT sku, name FROM marts.dim_components v
    WHERE v.component_id = r.component_id
    ORDER BY v.valid_from DESC
    LIMIT 1
) d ON true
WHERE r.revenue_rank <= 10
ORDER BY r.category, r.revenue_rank;
