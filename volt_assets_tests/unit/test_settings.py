"""`.env` is read as dotenv reads it (python-dotenv, as Docker Compose does): inline comments,
quotes and `export`; and what the stack writes reads back the same in dotenv and in a shell."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from volt_assets import settings

ROOT = Path(__file__).resolve().parents[2]


def compose_env_of_the_docs() -> str:
    """The `.env` for Compose exactly as docs/operations.md shows it."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text[text.index("A\n`.env` for Compose:") :]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block, "docs/operations.md lost its Compose .env block"
    return block.group(1)


def test_the_compose_env_of_the_docs_reads_without_its_comments(tmp_path, monkeypatch):
    body = compose_env_of_the_docs()
    assert "AWS_ACCESS_KEY_ID=volt-minio          # the pipeline signs" in body  # the fault exists
    (tmp_path / ".env").write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    env = {"VOLT_USE_STACK": "0"}
    settings.apply_environment(env)
    assert env["AWS_ACCESS_KEY_ID"] == "volt-minio"
    assert env["POSTGRES_PASSWORD"] == "..."
    assert env["DAGSTER_POSTGRES_PASSWORD"] == "..."
    assert env["MINIO_ROOT_PASSWORD"] == "..."
    assert env["MINIO_KMS_SECRET_KEY"] == "volt-key:..."
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["POSTGRES_HOST"] == "127.0.0.1"
    assert env["VOLT_PARTITIONS_START"] == "2025-01-01"
    assert not any("#" in value for value in env.values())
    assert not any(key.startswith("#") or " " in key for key in env)


def test_quotes_export_and_comments(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "# a comment line\n"
        "export S3_BUCKET_NAME=lake-a   # inline comment\n"
        'POSTGRES_PASSWORD="fake-pa ss # not a comment"\n'
        "AWS_SECRET_ACCESS_KEY='fake-lit$eral'  # comment\n"
        "VOLT_API_TOKEN=fake-tok#en\n"
        "  AWS_DEFAULT_REGION = eu-west-1\n"
        "VOLT_IMAGES_DIR=\n"
        "JUST_A_NAME\n",
        encoding="utf-8",
    )
    assert settings.parse_env_file(path) == {
        "S3_BUCKET_NAME": "lake-a",
        "POSTGRES_PASSWORD": "fake-pa ss # not a comment",
        "AWS_SECRET_ACCESS_KEY": "fake-lit$eral",
        "VOLT_API_TOKEN": "fake-tok#en",  # '#' starts a comment only after whitespace
        "AWS_DEFAULT_REGION": "eu-west-1",
        "VOLT_IMAGES_DIR": "",
    }


def test_references_are_expanded_as_dotenv_does(tmp_path):
    path = tmp_path / ".env"
    path.write_text("BASE=/srv/volt\nVOLT_IMAGES_DIR=${BASE}/pictures\n", encoding="utf-8")
    assert settings.parse_env_file(path)["VOLT_IMAGES_DIR"] == "/srv/volt/pictures"


def test_the_environment_still_wins_over_env_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("S3_BUCKET_NAME=from-file  # x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    env = {"VOLT_USE_STACK": "0", "S3_BUCKET_NAME": "from-env"}
    settings.apply_environment(env)
    assert env["S3_BUCKET_NAME"] == "from-env"


AWKWARD = {
    "PLAIN": "postgresql://u@127.0.0.1:5432/volt",
    "SPACE_HASH": "/srv/my pictures/#1",
    "DOLLAR": "a$b${HOME}c",
    "SINGLE_QUOTE": "it's",
    "EMPTY": "",
}


def test_written_env_files_read_back_the_same_in_dotenv_and_a_shell(tmp_path):
    path = tmp_path / "stack.env"
    settings.write_env_file(path, AWKWARD)
    assert settings.parse_env_file(path, interpolate=False) == AWKWARD
    script = f"set -a; . '{path}'; " + "; ".join(f'printf "%s\\0" "${k}"' for k in AWKWARD)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:-1] == list(AWKWARD.values())


def test_a_value_that_cannot_be_written_safely_is_refused_without_showing_it(tmp_path):
    with pytest.raises(ValueError) as raised:
        settings.write_env_file(tmp_path / "x.env", {"POSTGRES_PASSWORD": "q'\"$ecret"})
    assert "POSTGRES_PASSWORD" in str(raised.value) and "ecret" not in str(raised.value)
    assert not (tmp_path / "x.env").exists()


@pytest.mark.parametrize(("chosen", "expected"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_arrow_allocates_from_glibc_unless_the_user_chose(tmp_path, chosen, expected):
    """The package's import comes before pyarrow's, so the default reaches Arrow's own pool."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = (
        "import volt_assets, pyarrow, pyarrow.compute as pc;"
        "pc.sort_indices(pyarrow.array(range(100000)));"
        "print(pyarrow.default_memory_pool().backend_name,"
        " pyarrow.mimalloc_memory_pool().bytes_allocated())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    backend, mimalloc_bytes = out.stdout.split()
    assert backend == expected
    if expected == "system":
        assert mimalloc_bytes == "0"
