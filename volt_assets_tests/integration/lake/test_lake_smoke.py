"""First end-to-end run of raw + staging on the real services."""

from volt_assets_tests.pipeline import (
    component,
    create_source_schema,
    insert,
    materialize,
    read_parquet,
)


def test_raw_and_staging_for_one_day(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(1, "2026-01-02 00:00:00"),
            component(2, "2026-01-02 23:59:59.999999", name="  Robert');  DROP TABLE x;-- "),
            component(3, "2026-01-03 00:00:00"),
            component(4, "2026-01-02 10:00", price=None),
        ],
    )
    result = materialize(
        ["raw/electrical_components", "staging/electrical_components"],
        "2026-01-02",
        raise_on_error=False,
    )
    assert not result.success  # 1 of 3 refused: above the 5 % gate
    keys = volt_env.list_keys()
    print(keys)
    staging = read_parquet(
        volt_env, "staging/electrical_components/dt=2026-01-02/part-00000.parquet"
    )
    assert sorted(staging["id"].to_pylist()) == [1, 2]
    quarantine = read_parquet(
        volt_env, "quarantine/electrical_components/dt=2026-01-02/part-00000.parquet"
    )
    assert quarantine["id"].to_pylist() == ["4"]
    assert quarantine["_reasons"].to_pylist() == [["price: missing"]]
