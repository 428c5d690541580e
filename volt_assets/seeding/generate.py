"""The SQL that generates the shop, server side, one INSERT ... SELECT per table.

Each table's SELECT works in stages, innermost first (`OFFSET 0` keeps each stage computed
once per row instead of inlined into every expression that uses it):
1. per id: the decisions (dirt kind, life event, time offsets, hard delete), from hashes;
2. the clean row as the app would hold it after the shop's life over the window;
3. the dirt overrides of `dirt.py` applied to the clean columns.

The generator never stores history: the tables hold current state only, so "life" is the
final state it leaves (a renamed component has its new name and `updated_at` = the rename).
Times are microsecond offsets from the window start (`off`), W = the window's length: every
instant lies in [start, start + W), and `updated_at >= created_at` by construction.
"""

from __future__ import annotations

from volt_assets.seeding import dirt
from volt_assets.seeding.sqlkit import case_of, choice, h, pick, pool_item, u

DAY_US = 86_400_000_000
BOUNDARY_SHARE = (
    0.01  # rows stamped exactly at 00:00:00 or 23:59:59.999999 UTC (plus first and last id)
)
HARD_DELETE_SHARE = {"electrical_components": 0.02, "orders": 0.015}
# Last change of each row, as cumulative shares: a component is priced anew, renamed,
# restocked or soft-deleted once at most after its creation (the final state is what counts).
COMPONENT_LIFE = (
    ("none", 0.50),
    ("price_change", 0.68),
    ("rename", 0.78),
    ("stock_update", 0.96),
    ("soft_delete", 1.0),
)
USER_LIFE = (("none", 0.75), ("profile_update", 1.0))
# What happens to an order: most go through paid -> shipped -> delivered as far as the
# window's end allows; some are cancelled, a few abandoned in `pending`.
ORDER_FATE = (("cancelled", 0.10), ("abandoned", 0.15), ("normal", 1.0))
CURRENCIES = (
    ("PLN", 0.70, 1.0),
    ("EUR", 0.90, 4.30),
    ("USD", 1.0, 4.00),
)  # code, cumulative share, PLN per unit
PAYMENT_METHODS = (("card", 0.40), ("blik", 0.70), ("transfer", 0.88), ("paypal", 1.0))
PRICE_CHANGES = [0.85, 0.90, 0.95, 1.05, 1.10, 1.20]
RENAME_SUFFIXES = [
    "(Rev. B)",
    "- new version",
    "- bestseller",
    "(replaces discontinued model)",
    "- 2nd gen",
]
JPEG_SHARE = 0.25

WINDOW = "%(window_us)s::bigint"


def params() -> dict:
    """Parameters of the generator's own pools (the caller adds sizes, seed and window)."""
    return {"price_changes": PRICE_CHANGES, "rename_suffixes": RENAME_SUFFIXES, **dirt.params()}


def _ladder(u_expr: str, steps) -> str:
    """CASE over cumulative shares: ((name, upto), ...) -> the name whose band holds u."""
    whens = " ".join(f"WHEN {u_expr} < {upto} THEN '{name}'" for name, upto in steps[:-1])
    return f"CASE {whens} ELSE '{steps[-1][0]}' END"


def ts(off: str) -> str:
    return f"(%(start)s::timestamptz + ({off}) * interval '1 microsecond')"


def padded(col: str) -> str:
    """123 -> '000123' (never truncated: lpad would cut 1000000 to six digits)."""
    return f"lpad({col}::text, greatest(6, length({col}::text)), '0')"


# --- time: ids grow with creation time, as serial ids do ---------------------------------------
# Row `id` of n is created at W * ((id - 1 + jitter) / n) ** power: monotone in id, early-skewed
# for power > 1 (the catalogue and customers mostly predate the orders). The inverse tells an
# order which ids already existed when it was placed.

GROWTH = {"component": 2.0, "user": 1.5}
WEEKLY_SWING = 0.3
COUNT_PARAM = {"component": "%(components)s", "user": "%(users)s", "order": "%(orders)s"}


def is_boundary(entity: str, col: str) -> str:
    """Rows stamped on a boundary instant: the first id (window start 00:00:00), the last id
    (window end 23:59:59.999999) and about BOUNDARY_SHARE of the others (even at dirt rate 0)."""
    return f"({col} = 1 OR {col} = {COUNT_PARAM[entity]} OR {u(f'{entity}.boundary', col)} < {BOUNDARY_SHARE})"


def _curve(entity: str, x: str) -> str:
    """Share of the window elapsed when share x of the rows exists (monotone, 0 -> 0).

    Orders follow a weekly rhythm (busier and quieter days, +-WEEKLY_SWING); components and
    users follow x ** GROWTH: most of the catalogue and the customers come early."""
    if entity == "order":
        k = "(2 * pi() * %(days)s / 7.0)"
        return f"({x} + {WEEKLY_SWING} * sin({k} * {x}) / {k})"
    return f"power({x}, {GROWTH[entity]})"


def created_off(entity: str, col: str) -> str:
    """When row `col` was created. Boundary rows move back to their day's 00:00:00 or to the
    previous day's 23:59:59.999999: never later, so "created before referenced" still holds."""
    n = COUNT_PARAM[entity]
    x = f"(({col} - 1 + {u(f'{entity}.created', col)})::float8 / {n})"
    base = f"least({WINDOW} - 1, floor({WINDOW} * {_curve(entity, x)}))::bigint"
    midnight = f"({base} - mod({base}, {DAY_US}))"
    eve = f"CASE WHEN {pick(f'{entity}.boundary_eve', 2, col)} = 1 AND {midnight} > 0 THEN 1 ELSE 0 END"
    return (
        f"CASE WHEN {col} = 1 THEN 0 WHEN {col} = {n} THEN {WINDOW} - 1 "
        f"WHEN {is_boundary(entity, col)} THEN {midnight} - {eve} ELSE {base} END"
    )


def existing_id(entity: str, at_off: str, salt_name: str, skew: float, col: str = "id") -> str:
    """An id of `entity` created by offset `at_off`, low ids favoured (u**skew): loyal
    customers and long-listed bestsellers."""
    n = COUNT_PARAM[entity]
    newest = f"greatest(1, floor({n} * power({at_off}::float8 / {WINDOW}, {1 / GROWTH[entity]}) - 1e-9))::bigint"
    return f"(1 + floor({newest} * power({u(salt_name, col)}, {skew}))::bigint)"


def change_off(entity: str, created: str, col: str = "id") -> str:
    """A moment in [created, window end): when the row last changed."""
    return f"({created} + mod({h(f'{entity}.change', col)}, {WINDOW} - {created}))"


# --- a component's facts (orders need them too) -----------------------------------------------


def component_variant(col: str) -> str:
    """A component's catalogue variant: a category slot weighted by share, then a variant in it."""
    slot = f"1 + {pick('component.slot', 100, col)}"
    return (
        f"(%(slot_first)s::int[])[{slot}] + "
        f"mod({h('component.variant', col)}, (%(slot_count)s::int[])[{slot}])"
    )


def component_currency(col: str) -> str:
    return _ladder(u("component.currency", col), [(code, upto) for code, upto, _ in CURRENCIES])


def pln_per_unit(currency: str) -> str:
    whens = " ".join(f"WHEN '{code}' THEN {rate}" for code, _, rate in CURRENCIES)
    return f"CASE {currency} {whens} END"


def component_list_price(col: str, price_pln: str, currency: str) -> str:
    """The price the component was listed at (before any later price change)."""
    jitter = f"(0.95 + 0.1 * {u('component.jitter', col)})"
    return f"greatest(0.01, round(({price_pln} / {pln_per_unit(currency)} * {jitter})::numeric, 2))"


def _apply_dirt(table: str, columns: list[str]) -> str:
    by_column = dirt.overrides(table)
    return ",\n       ".join(f"{case_of('dirt', by_column.get(c, {}), c)} AS {c}" for c in columns)


# --- the three tables -----------------------------------------------------------------------

COMPONENT_COLUMNS = [
    "id",
    "sku",
    "name",
    "category",
    "manufacturer",
    "description",
    "price",
    "currency",
    "stock_quantity",
    "voltage_rating",
    "specs",
    "image_filename",
    "created_at",
    "updated_at",
    "deleted_at",
]
USER_COLUMNS = ["id", "email", "full_name", "country", "created_at", "updated_at"]
ORDER_COLUMNS = [
    "id",
    "user_id",
    "component_id",
    "quantity",
    "unit_price",
    "currency",
    "status",
    "payment_method",
    "ordered_at",
    "updated_at",
]


def components_select() -> str:
    """Every component ever created (hard-deleted ones flagged), dirty, with `dirt`,
    `hard_deleted` and `category_code` besides the table's columns. Needs temp table `volt_variant`."""
    return f"""
SELECT {_apply_dirt("electrical_components", COMPONENT_COLUMNS)},
       dirt, hard_deleted, category_code
FROM (
  SELECT s.id, s.dirt, s.x, s.v, s.hard_deleted, s.category_code,
         s.manufacturer_code || '-' || s.category_code || '-' || {padded("s.id")} AS sku,
         CASE WHEN s.life = 'rename'
              THEN s.variant_name || ' ' || {pool_item("rename_suffixes", RENAME_SUFFIXES, "s.v")}
              ELSE s.variant_name END AS name,
         s.category, s.manufacturer,
         CASE WHEN {u("component.no_description", "s.id")} < 0.05 THEN NULL ELSE s.description END AS description,
         CASE WHEN s.life = 'price_change'
              THEN greatest(0.01, round(s.list_price * {choice("price_changes", PRICE_CHANGES, "component.price_change", "s.id", "numeric")}, 2))
              ELSE s.list_price END AS price,
         s.currency::char(3) AS currency,
         CASE WHEN s.life = 'stock_update' THEN {pick("component.restock", 800, "s.id")}::int
              WHEN {u("component.out_of_stock", "s.id")} < 0.08 THEN 0
              ELSE 1 + {pick("component.stock", 400, "s.id")}::int END AS stock_quantity,
         s.voltage_rating, s.specs,
         'component_' || {padded("s.id")}
             || CASE WHEN {u("component.jpeg", "s.id")} < {JPEG_SHARE} THEN '.jpg' ELSE '.png' END AS image_filename,
         {ts("s.created_off")} AS created_at,
         {ts("s.updated_off")} AS updated_at,
         CASE WHEN s.life = 'soft_delete' THEN {ts("s.updated_off")} END AS deleted_at
  FROM (
    SELECT d.id, d.dirt, d.x, d.v, d.life, d.hard_deleted, d.currency, d.created_off,
           CASE WHEN d.life = 'none' THEN d.created_off ELSE {change_off("component", "d.created_off", "d.id")} END AS updated_off,
           {component_list_price("d.id", "var.price_pln", "d.currency")} AS list_price,
           var.category, var.category_code, var.manufacturer, var.manufacturer_code,
           var.name AS variant_name, var.description, var.voltage_rating, var.specs
    FROM (
      SELECT id,
             {dirt.dirt_kind_sql("electrical_components")} AS dirt, {dirt.dirt_position_sql("electrical_components")} AS x,
             {h("component.v")} AS v,
             {created_off("component", "id")} AS created_off,
             -- Boundary rows keep their instant: no later change, never hard-deleted.
             CASE WHEN {is_boundary("component", "id")} THEN 'none'
                  ELSE {_ladder(u("component.life"), COMPONENT_LIFE)} END AS life,
             NOT {is_boundary("component", "id")}
                 AND {u("component.hard_delete")} < {HARD_DELETE_SHARE["electrical_components"]} AS hard_deleted,
             {component_variant("id")} AS variant,
             {component_currency("id")} AS currency
      FROM generate_series(1, %(components)s::bigint) AS id
      OFFSET 0
    ) d
    JOIN volt_variant var ON var.idx = d.variant
    OFFSET 0
  ) s
) clean"""


def users_select() -> str:
    country = "(%(people_slots)s::int[])[1 + " + pick("user.country", 100, "id") + "] + 1"
    width = "%(people_width)s"
    return f"""
SELECT {_apply_dirt("users", USER_COLUMNS)},
       dirt, false AS hard_deleted
FROM (
  SELECT s.id, s.dirt, s.x, s.v,
         CASE {pick("user.email_pattern", 4, "s.id")}
              WHEN 0 THEN s.given_ascii || '.' || s.family_ascii
              WHEN 1 THEN s.given_ascii || '.' || s.family_ascii || {pick("user.email_number", 100, "s.id")}::text
              WHEN 2 THEN left(s.given_ascii, 1) || s.family_ascii
              ELSE s.given_ascii || '_' || s.family_ascii || s.id::text END
           || '@' || s.domain AS email,
         s.given || ' ' || s.family AS full_name,
         s.country::char(2) AS country,
         {ts("s.created_off")} AS created_at,
         {ts("CASE WHEN s.life = 'none' THEN s.created_off ELSE " + change_off("user", "s.created_off", "s.id") + " END")} AS updated_at
  FROM (
    SELECT d.*,
           (%(people_countries)s::text[])[d.c] AS country,
           (%(people_given)s::text[])[d.c][1 + {pick("user.given", width, "d.id")}] AS given,
           (%(people_given_ascii)s::text[])[d.c][1 + {pick("user.given", width, "d.id")}] AS given_ascii,
           (%(people_family)s::text[])[d.c][1 + {pick("user.family", width, "d.id")}] AS family,
           (%(people_family_ascii)s::text[])[d.c][1 + {pick("user.family", width, "d.id")}] AS family_ascii,
           (%(people_domains)s::text[])[d.c][1 + {pick("user.domain", width, "d.id")}] AS domain
    FROM (
      SELECT id,
             {dirt.dirt_kind_sql("users")} AS dirt, {dirt.dirt_position_sql("users")} AS x,
             {h("user.v")} AS v,
             {country} AS c,
             {created_off("user", "id")} AS created_off,
             CASE WHEN {is_boundary("user", "id")} THEN 'none'
                  ELSE {_ladder(u("user.life"), USER_LIFE)} END AS life
      FROM generate_series(1, %(users)s::bigint) AS id
      OFFSET 0
    ) d
    OFFSET 0
  ) s
  OFFSET 0
) clean"""


_ORDER_UPDATED_OFF = """CASE t.status WHEN 'cancelled' THEN t.cancel_off WHEN 'paid' THEN t.paid_off
                 WHEN 'shipped' THEN t.shipped_off WHEN 'delivered' THEN t.delivered_off
                 ELSE t.ordered_off END"""


def _order_draws() -> str:
    """Each order's drawn values: who bought what, how many, at what price, how it was paid."""
    return f"""
          SELECT d.id, d.dirt, d.x, d.v, d.fate, d.user_id, d.component_id, d.currency, d.boundary, d.ordered_off,
                 NOT d.boundary AND d.hard_u < {HARD_DELETE_SHARE["orders"]} AS hard_deleted,
                 CASE WHEN {u("order.bulk", "d.id")} < 0.7 THEN 1 + {pick("order.qty", 3, "d.id")}
                      WHEN {u("order.bulk", "d.id")} < 0.9 THEN 4 + {pick("order.qty", 17, "d.id")}
                      ELSE 25 + {pick("order.qty", 476, "d.id")} END::int AS quantity,
                 -- Near the component's list price: discounts, price changes since, rounding.
                 round({component_list_price("d.component_id", "var.price_pln", "d.currency")}
                       * (0.97 + 0.06 * {u("order.price", "d.id")})::numeric, 2) AS unit_price,
                 {_ladder(u("order.payment", "d.id"), PAYMENT_METHODS)} AS payment_method
          FROM (
            SELECT o.*,
                   {component_variant("o.component_id")} AS variant,
                   ({component_currency("o.component_id")})::char(3) AS currency
            FROM (
              SELECT t0.*,
                     -- Only users and components that existed when the order was placed.
                     {existing_id("user", "t0.ordered_off", "order.user", 1.5, "t0.id")} AS user_id,
                     {existing_id("component", "t0.ordered_off", "order.component", 2.0, "t0.id")} AS component_id
              FROM (
                SELECT id,
                       {dirt.dirt_kind_sql("orders")} AS dirt, {dirt.dirt_position_sql("orders")} AS x,
                       {h("order.v")} AS v,
                       {u("order.hard_delete")} AS hard_u,
                       {_ladder(u("order.fate"), ORDER_FATE)} AS fate,
                       {is_boundary("order", "id")} AS boundary,
                       {created_off("order", "id")} AS ordered_off
                FROM generate_series(1, %(orders)s::bigint) AS id
                OFFSET 0
              ) t0
              OFFSET 0
            ) o
            OFFSET 0
          ) d
"""


def orders_select() -> str:
    """Orders by users of components that existed when the order was placed (some components
    hard-deleted since); the status is as far as the order got by the window's end."""
    last = f"({WINDOW} - 1)"
    hour = 3_600_000_000
    return f"""
SELECT {_apply_dirt("orders", ORDER_COLUMNS)},
       dirt, hard_deleted
FROM (
  SELECT t.id, t.dirt, t.x, t.v, t.hard_deleted, t.user_id, t.component_id,
         t.quantity, t.unit_price, t.currency, t.payment_method, t.status,
         {ts("t.ordered_off")} AS ordered_at,
         {ts(_ORDER_UPDATED_OFF)} AS updated_at
  FROM (
    SELECT q.*,
           CASE WHEN q.boundary THEN 'pending'
                WHEN q.fate = 'cancelled' THEN CASE WHEN q.cancel_off <= {last} THEN 'cancelled' ELSE 'pending' END
                WHEN q.fate = 'abandoned' THEN 'pending'
                WHEN q.delivered_off <= {last} THEN 'delivered'
                WHEN q.shipped_off <= {last} THEN 'shipped'
                WHEN q.paid_off <= {last} THEN 'paid'
                ELSE 'pending' END AS status
    FROM (
      -- Each stage follows the previous: paid 1 min..2 h after ordering, shipped 6 h..2 d
      -- after payment, delivered 1..4 d after shipping; a cancellation 10 min..3 d after ordering.
      SELECT p.*, p.shipped_off + {DAY_US} + {pick("order.to_delivered", 3 * DAY_US, "p.id")} AS delivered_off
      FROM (
        SELECT r.*,
               r.ordered_off + 60000000 + {pick("order.to_paid", 2 * hour, "r.id")} AS paid_off,
               r.ordered_off + 60000000 + {pick("order.to_paid", 2 * hour, "r.id")}
                 + {6 * hour} + {pick("order.to_shipped", 42 * hour, "r.id")} AS shipped_off,
               r.ordered_off + 600000000 + {pick("order.to_cancel", 3 * DAY_US, "r.id")} AS cancel_off
        FROM (
{_order_draws()}
          JOIN volt_variant var ON var.idx = d.variant
          OFFSET 0
        ) r
      ) p
    ) q
  ) t
) clean"""


SELECTS = {
    "electrical_components": components_select,
    "users": users_select,
    "orders": orders_select,
}
COLUMNS = {
    "electrical_components": COMPONENT_COLUMNS,
    "users": USER_COLUMNS,
    "orders": ORDER_COLUMNS,
}
