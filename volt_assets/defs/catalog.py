"""The catalog the Dagster UI shows: columns, owners, tags, code versions, links to the code.

Every lake and mart asset passes `**lake_catalog(...)` / `**mart_catalog(...)` to its
`@dg.asset`; each domain's definitions pass their assets through `linked()`.

- Columns (`dagster/column_schema`): staging's are its Arrow schema (`TableConfig.staging_schema`,
  the schema its Parquet files are written with), raw's and the sources' the declared source
  columns of `tables.yaml` (raw is JSON Lines: one member per column), the marts' their DDL in
  `sql/marts/`. Descriptions come from `tables.yaml` and the DDL's column comments.
- `code_version`: a digest of the table's settings and of the modules that build the layer,
  so a changed rule in `tables.yaml` marks staging stale (raw only follows extraction settings).
- Code references: the function that builds the asset and its block of `tables.yaml` (or its
  DDL file), as links into the git repository at VOLT_GIT_URL (branch VOLT_GIT_BRANCH, default
  `main`); with VOLT_GIT_URL unset, as local file paths.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from volt_assets.lib.config import catalog, table_config
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.settings import project_root

PACKAGE_DIR = Path(__file__).resolve().parents[1]
OWNERS = ["team:data-platform"]
PII = "pii"  # tag key (no value): the asset or column holds personal data
# Dagster's standard metadata keys (its TableMetadataSet, not exported by `dagster` 1.13)
COLUMN_SCHEMA, TABLE_NAME, ROW_COUNT = (
    "dagster/column_schema",
    "dagster/table_name",
    "dagster/row_count",
)
CODE_REFERENCES = "dagster/code_references"
ATHENA_DATABASE = "volt_lake"  # sql/athena/: one table per layer and source table
MART_PII = {"users_mart": ("email",)}  # mart columns holding personal data

# The modules that decide what a layer's partitions hold (their source is part of its code version).
RAW_CODE = ("defs/lake/raw.py", "lib/capture/extract.py")
STAGING_CODE = (
    "defs/lake/staging.py",
    "lib/staging/transform.py",
    "lib/staging/rules.py",
    "lib/staging/raw_reader.py",
    "lib/capture/exact_json.py",
    "lib/config/table_config.py",
)
MART_CODE = ("defs/marts/history.py",)  # plus the mart's own module and DDL file
IMAGES_CODE = ("defs/images/assets.py", "defs/images/upload.py")

ADDED_COLUMNS = {  # staging's own columns (table_config.STAGING_EXTRA_FIELDS)
    "_deleted": "True when the row is deleted: soft (the soft-delete column is set) or hard "
    "(a tombstone: only the key and this flag are set).",
    "_extracted_at": "When raw captured this version "
    "(for a tombstone: when the delete was noticed).",
}


def source_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["source", table])


PICTURES_KEY = dg.AssetKey(["source", "pictures"])


def layer_tags(layer: str, pii: bool = False) -> dict[str, str]:
    return {"layer": layer, **({PII: ""} if pii else {})}


def _code_files(names: Sequence[str]) -> list[Path]:
    return [PACKAGE_DIR / n for n in names]


def _column_tags(config: TableConfig, column: str) -> dict[str, str]:
    return {PII: ""} if column in config.pii else {}


def _rule_notes(config: TableConfig, column: str) -> list[str]:
    """What staging promises about a column: rows breaking a refuse rule are quarantined."""
    # Short: the UI shows each as a chip of about 25 characters.
    notes = [f"refused unless {r.rule}" for r in config.refuse if r.column == column]
    notes += [f"check: {r.rule}" for r in config.checks if r.column == column]
    return notes


def source_columns(config: TableConfig, key: dg.TableColumnConstraints) -> dg.TableSchema:
    """The declared source columns (PostgreSQL types); `key`: the primary key's constraints."""
    columns = [
        dg.TableColumn(
            name=column,
            type=declared,
            description=config.descriptions.get(column),
            constraints=key if column == config.primary_key else None,
            tags=_column_tags(config, column),
        )
        for column, declared in config.columns.items()
    ]
    return dg.TableSchema(columns=columns)


def raw_columns(config: TableConfig) -> dg.TableSchema:
    """Raw is JSON Lines (*.jsonl.gz), one source row a line: its columns are the JSON members,
    the source's columns as tables.yaml declares them (a column the source adds later is
    captured too, and the schema_drift check reports it)."""
    key = dg.TableColumnConstraints(other=[f"key + {config.cursor}: a version"])
    schema = source_columns(config, key)
    notes = ["JSON Lines: a row a line", "columns = JSON members", "added columns kept"]
    return dg.TableSchema(columns=schema.columns, constraints=dg.TableConstraints(other=notes))


def staging_columns(config: TableConfig) -> dg.TableSchema:
    """Exactly the Parquet files' schema: names, Arrow types and nullability, in file order."""
    columns = []
    for f in config.staging_schema():
        other = _rule_notes(config, f.name)
        if f.name == config.primary_key:
            other.insert(0, "one row per key and day")
        columns.append(
            dg.TableColumn(
                name=f.name,
                type=catalog.arrow_type_name(f.type),
                description=config.descriptions.get(f.name) or ADDED_COLUMNS.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable, other=other),
                tags=_column_tags(config, f.name),
            )
        )
    table_notes = ["one row per key and day", "hard delete: tombstone row"]
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=table_notes))


def _yaml_reference(config: TableConfig) -> dg.LocalFileCodeReference:
    """The table's block in tables.yaml (where its columns and rules are configured)."""
    path = table_config.CONFIG_PATH  # read when called: a test may point it at another file
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next((i + 1 for i, text in enumerate(lines) if text == f"  {config.name}:"), 1)
    return dg.LocalFileCodeReference(
        file_path=str(path.resolve()), line_number=line, label=f"tables.yaml: {config.name}"
    )


def _references(*refs: dg.LocalFileCodeReference) -> dict:
    return {CODE_REFERENCES: dg.CodeReferencesMetadataValue(code_references=list(refs))}


def lake_catalog(layer: str, config: TableConfig, metadata: dict) -> dict:
    """`@dg.asset` arguments of `raw/{table}` or `staging/{table}`: metadata (plus `metadata`),
    owners, tags and code version."""
    if layer == "raw":
        settings = catalog.settings_digest_input(config, catalog.RAW_SETTINGS)
        files, schema, table_name = RAW_CODE, raw_columns(config), None
    else:
        settings = catalog.settings_digest_input(config)
        files, schema = STAGING_CODE, staging_columns(config)
        table_name = f"{ATHENA_DATABASE}.{layer}_{config.name}"
    table = {COLUMN_SCHEMA: schema, **({TABLE_NAME: table_name} if table_name else {})}
    return {
        "metadata": {**metadata, **table, **_references(_yaml_reference(config))},
        "owners": OWNERS,
        "tags": layer_tags(layer, pii=bool(config.pii)),
        "code_version": catalog.code_version([layer, settings], _code_files(files)),
    }


def mart_columns(table: catalog.DdlTable, pii: Sequence[str] = ()) -> dg.TableSchema:
    """The DDL's columns: its types, NOT NULL, primary key and unique constraints, comments."""
    single_key = len(table.primary_key) == 1
    columns = []
    for c in table.columns:
        other = (
            [f"primary key ({', '.join(table.primary_key)})"] if c.name in table.primary_key else []
        )
        unique = (single_key and c.name in table.primary_key) or f"({c.name})" in table.unique
        columns.append(
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description,
                constraints=dg.TableColumnConstraints(
                    nullable=not c.not_null, unique=unique, other=other
                ),
                tags={PII: ""} if c.name in pii else {},
            )
        )
    notes = [f"PRIMARY KEY ({', '.join(table.primary_key)})"] if table.primary_key else []
    notes += [f"UNIQUE {u}" for u in table.unique] + table.checks
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=notes))


def mart_ddl() -> dict[str, catalog.DdlTable]:
    return catalog.read_ddl((project_root() / "sql" / "marts").glob("*.sql"))


def mart_catalog(name: str, module: Path, metadata: dict) -> dict:
    """`@dg.asset` arguments of `marts/{name}`, built by the function in `module`."""
    table = mart_ddl()[f"marts.{name}"]
    schema = mart_columns(table, MART_PII.get(name, ()))
    ddl_ref = dg.LocalFileCodeReference(
        file_path=str(table.path.resolve()), line_number=table.line, label=f"DDL: marts.{name}"
    )
    return {
        "metadata": {**metadata, COLUMN_SCHEMA: schema, **_references(ddl_ref)},
        "owners": OWNERS,
        "tags": layer_tags("marts", pii=name in MART_PII),
        "code_version": catalog.code_version(
            ["marts", name], [module, table.path, *_code_files(MART_CODE)]
        ),
    }


def module_of(fn) -> Path:
    return Path(inspect.getsourcefile(fn)).resolve()


def images_catalog() -> dict:
    return {
        "owners": OWNERS,
        "tags": layer_tags("images"),
        "code_version": catalog.code_version(["images"], _code_files(IMAGES_CODE)),
    }


def git_settings() -> tuple[str, str] | None:
    """(repository URL, branch) from VOLT_GIT_URL / VOLT_GIT_BRANCH; None when unset."""
    url = os.environ.get("VOLT_GIT_URL", "").strip().rstrip("/")
    if not url:
        return None
    return url.removesuffix(".git"), os.environ.get("VOLT_GIT_BRANCH", "").strip() or "main"


def linked(assets: Sequence[dg.AssetsDefinition]) -> list:
    """The assets with references to their code, as git links when VOLT_GIT_URL is set."""
    referenced = dg.with_source_code_references(list(assets))
    git = git_settings()
    if git is None:
        return list(referenced)
    url, branch = git
    # Dagster builds links in these two hosts' layouts; any other host is taken as GitHub-like.
    platform = "gitlab" if "gitlab" in url else "github"
    mapping = dg.AnchorBasedFilePathMapping(
        local_file_anchor=PACKAGE_DIR / "__init__.py",
        file_anchor_path_in_repository="volt_assets/__init__.py",
    )
    return list(
        dg.link_code_references_to_git(
            referenced, git_url=url, git_branch=branch, file_path_mapping=mapping, platform=platform
        )
    )


def source_specs(tables: Sequence[TableConfig]) -> list[dg.AssetSpec]:
    """Volt's own tables and pictures folder: external assets where the lineage starts."""
    specs = [
        dg.AssetSpec(
            key=source_key(t.name),
            group_name="source",
            kinds={"postgres"},
            owners=OWNERS,
            tags=layer_tags("source", pii=bool(t.pii)),
            description=f"Volt's `{t.name}` table in PostgreSQL (POSTGRES_DB), "
            f"read by raw/{t.name}.",
            metadata={
                COLUMN_SCHEMA: source_columns(
                    t,
                    key=dg.TableColumnConstraints(
                        nullable=False, unique=True, other=["primary key"]
                    ),
                ),
                TABLE_NAME: t.name,
            },
        )
        for t in tables
    ]
    specs.append(
        dg.AssetSpec(
            key=PICTURES_KEY,
            group_name="source",
            kinds={"files"},
            owners=OWNERS,
            tags=layer_tags("source"),
            description="The folder of component pictures (VOLT_IMAGES_DIR), "
            "read by images/component_images.",
        )
    )
    return specs
