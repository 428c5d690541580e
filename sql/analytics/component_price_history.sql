-- Price history of one component from the type 2 table: every version, when it was valid,
-- its price and the change on the version before (NULL on the first version, 0.00 when only
-- the name, category, manufacturer or currency changed). valid_to NULL = the current
-- version; a deleted component has no current version (its last valid_to is the delete).
-- Parameter: %(component_id)s.
SELECT component_id, sku, name, valid_from, valid_to, is_current, price, currency,
       lag(price) OVER w AS previous_price,
       price - lag(price) OVER w AS price_change
FROM marts.dim_components
WHERE component_id = %(component_id)s
WINDOW w AS (PARTITION BY component_id ORDER BY valid_from)
ORDER BY valid_from;
