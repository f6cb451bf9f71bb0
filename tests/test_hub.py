"""Pushing a dataset export: the real huggingface_hub client against a local Hub endpoint.

The server in ``hub_endpoint.py`` speaks the Hub's HTTP API on 127.0.0.1; nothing of
``builder.hub`` is replaced. A guard fixture refuses every socket connection that is not to
the loopback interface, so no test can reach the real network.
"""

from __future__ import annotations

import io
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import constants
from PIL import Image

from ctdegradbench.builder.dataset.hub import (
    IGNORE_PATTERNS,
    PushError,
    check_dataset_folder,
    push_folder,
    resolve_token,
)
from hub_endpoint import INVALID_TOKEN_MESSAGE, LocalHub

TOKEN = "hf_test"
REPO_ID = "ct-lab/ct-degradbench-mini"

CARD = """---
configs:
- config_name: mixture_m5
  data_files:
  - split: train
    path: data/mixture_m5/train-*.parquet
  - split: test
    path: data/mixture_m5/test-*.parquet
dataset_info:
  config_name: mixture_m5
---
# CT-DegradBench (test export)
"""


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def no_stored_token(monkeypatch, tmp_path):
    """No token anywhere huggingface_hub looks: environment, OIDC, token file."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))


@pytest.fixture
def hub():
    with LocalHub(token=TOKEN) as server:
        yield server


def png16_bytes(seed: int) -> bytes:
    """A 16-bit greyscale PNG of 8x8 HU-like values (PNG bytes, as the export stores them)."""
    values = np.random.default_rng(seed).integers(0, 4096, size=(8, 8), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def make_export(root, name="ct-degradbench"):
    """A minimal finished export: card, two Parquet shards, two PNGs, plus things never pushed."""
    folder = root / name
    (folder / "data" / "mixture_m5").mkdir(parents=True)
    (folder / "images").mkdir()
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    for split, n in (("train", 3), ("test", 2)):
        table = pa.table({"sample_id": [f"{split}-{i}" for i in range(n)], "level": list(range(n))})
        pq.write_table(table, folder / "data" / "mixture_m5" / f"{split}-00000-of-00001.parquet")
    for i in range(2):
        (folder / "images" / f"ref_{i}.png").write_bytes(png16_bytes(i))
    # never uploaded (IGNORE_PATTERNS): a local cache and a stale partial folder
    (folder / ".cache").mkdir()
    (folder / ".cache" / "scratch.bin").write_bytes(b"\x00" * 16)
    (folder / "old.partial").mkdir()
    (folder / "old.partial" / "train-00000-of-00001.parquet").write_bytes(b"stale")
    return folder


def expected_files(folder) -> dict[str, bytes]:
    pushed = ["README.md", "data/mixture_m5/train-00000-of-00001.parquet",
              "data/mixture_m5/test-00000-of-00001.parquet", "images/ref_0.png", "images/ref_1.png"]
    return {path: (folder / path).read_bytes() for path in pushed}


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


# ---------------------------------------------------------------- successful uploads


def test_push_creates_private_dataset_repo_and_uploads_every_file_in_one_commit(hub, tmp_path):
    folder = make_export(tmp_path)
    url = push_folder(folder, REPO_ID, token=TOKEN, private=True, endpoint=hub.url, commit_message="v0.1 export")

    assert hub.unexpected == []
    repo = hub.repos[("dataset", REPO_ID)]
    assert repo.private
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit.repo_type, commit.repo_id, commit.revision) == ("dataset", REPO_ID, "main")
    assert commit.summary == "v0.1 export"
    assert commit.files == expected_files(folder)  # byte-identical, nothing ignored slipped in
    assert repo.branches["main"] == expected_files(folder)
    assert url == f"{hub.url}/datasets/{REPO_ID}/commit/{repo.heads['main']}"
    assert hub.validated_cards == [CARD]


def test_push_to_a_new_branch_of_an_existing_public_repo(hub, tmp_path):
    folder = make_export(tmp_path)
    push_folder(folder, REPO_ID, token=TOKEN, endpoint=hub.url)
    (folder / "images" / "ref_1.png").write_bytes(png16_bytes(7))
    push_folder(folder, REPO_ID, token=TOKEN, endpoint=hub.url, revision="v2")

    repo = hub.repos[("dataset", REPO_ID)]
    assert not repo.private  # the default: not requested private
    assert [c.revision for c in hub.commits] == ["main", "v2"]
    assert ("POST", f"/api/datasets/{REPO_ID}/branch/v2") in hub.requests
    assert repo.branches["v2"] == expected_files(folder)
    assert repo.branches["main"]["images/ref_1.png"] == png16_bytes(1)  # main untouched
    assert hub.unexpected == []


def test_token_is_taken_from_hf_token_environment(hub, tmp_path, no_stored_token, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert resolve_token() == TOKEN
    push_folder(make_export(tmp_path), REPO_ID, endpoint=hub.url)
    assert len(hub.commits) == 1


# ---------------------------------------------------------------- failures: one clear line


def test_private_push_into_existing_public_repo_is_refused(hub, tmp_path):
    folder = make_export(tmp_path)
    push_folder(folder, REPO_ID, token=TOKEN, endpoint=hub.url)
    with pytest.raises(PushError) as err:
        push_folder(folder, REPO_ID, token=TOKEN, endpoint=hub.url, private=True)
    assert "public" in assert_one_line(err)
    assert len(hub.commits) == 1


def test_no_token_asks_to_log_in(hub, tmp_path, no_stored_token):
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), REPO_ID, endpoint=hub.url)
    message = assert_one_line(err)
    assert "hf auth login" in message and "HF_TOKEN" in message
    assert hub.requests == []


def test_offline_mode_is_reported_before_any_request(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), REPO_ID, token=TOKEN, endpoint=hub.url)
    assert "offline" in assert_one_line(err).lower()
    assert hub.requests == []


def test_unreachable_endpoint_names_the_endpoint(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), REPO_ID, token=TOKEN, endpoint=endpoint)
    message = assert_one_line(err)
    assert endpoint in message and "cannot reach" in message


def test_rejected_token_reports_the_server_message(hub, tmp_path):
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), REPO_ID, token="hf_wrong", endpoint=hub.url)
    message = assert_one_line(err)
    assert "401" in message and INVALID_TOKEN_MESSAGE in message and "hf auth login" in message
    assert hub.repos == {} and hub.commits == []


def test_card_rejected_by_the_hub_is_reported(hub, tmp_path):
    hub.yaml_errors = ['"configs[0].data_files" must be an array']
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), REPO_ID, token=TOKEN, endpoint=hub.url)
    assert hub.yaml_errors[0] in assert_one_line(err)
    assert hub.commits == []


@pytest.mark.parametrize("repo_id", ["ct-degradbench", "a/b/c", "org/-name", "org/na me", "org/x--y", "", "org/"])
def test_bad_repo_id(repo_id, hub, tmp_path):
    with pytest.raises(PushError) as err:
        push_folder(make_export(tmp_path), repo_id, token=TOKEN, endpoint=hub.url)
    assert "ORG/NAME" in assert_one_line(err)
    assert hub.requests == []


# ---------------------------------------------------------------- folder checks


def test_finished_export_passes_and_lists_its_shards(tmp_path):
    folder = make_export(tmp_path)
    assert check_dataset_folder(folder) == sorted((folder / "data").rglob("*.parquet"))
    assert len(check_dataset_folder(folder)) == 2


def _no_readme(folder):
    (folder / "README.md").unlink()


def _no_front_matter(folder):
    (folder / "README.md").write_text("# just a title\n")


def _no_configs(folder):
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# card\n")


def _broken_yaml(folder):
    (folder / "README.md").write_text("---\nconfigs: [unclosed\n---\n")


def _config_without_files(folder):
    (folder / "README.md").write_text(CARD.replace("test-*.parquet", "validation-*.parquet"))


def _no_parquet(folder):
    for shard in (folder / "data").rglob("*.parquet"):
        shard.unlink()


def _incomplete_marker(folder):
    (folder / "data" / ".incomplete").write_text("")


@pytest.mark.parametrize(
    ("break_folder", "expected"),
    [
        (_no_readme, "no README.md"),
        (_no_front_matter, "no YAML front matter"),
        (_no_configs, "no 'configs:'"),
        (_broken_yaml, "does not parse"),
        (_config_without_files, "validation-*.parquet"),
        (_no_parquet, "match no file"),  # the card's patterns no longer match either
        (_incomplete_marker, "unfinished build"),
    ],
)
def test_unusable_folder_is_refused(break_folder, expected, tmp_path, hub):
    folder = make_export(tmp_path)
    break_folder(folder)
    with pytest.raises(PushError) as err:
        push_folder(folder, REPO_ID, token=TOKEN, endpoint=hub.url)
    assert expected in assert_one_line(err)
    assert hub.requests == []


def test_parquet_outside_data_folder_does_not_count(tmp_path):
    folder = make_export(tmp_path)
    (folder / "README.md").write_text(CARD.replace("data/mixture_m5/", "shards/"))
    (folder / "shards").mkdir()
    for shard in (folder / "data").rglob("*.parquet"):
        shard.rename(folder / "shards" / shard.name)
    with pytest.raises(PushError) as err:
        check_dataset_folder(folder)
    assert "data/**/*.parquet" in assert_one_line(err)


def test_missing_and_partial_folders_are_refused(tmp_path):
    with pytest.raises(PushError) as err:
        check_dataset_folder(tmp_path / "nowhere")
    assert "does not exist" in assert_one_line(err)
    partial = make_export(tmp_path, name=".ct-degradbench.partial")
    with pytest.raises(PushError) as err:
        check_dataset_folder(partial)
    assert "unfinished build" in assert_one_line(err)


def test_ignore_patterns_cover_partial_folders_and_caches():
    from huggingface_hub.utils import filter_repo_objects

    paths = ["README.md", "x.partial", "old.partial/a.parquet", ".cache/a", "data/.cache/b",
             ".incomplete", "data/m5/train-00000-of-00001.parquet"]
    kept = list(filter_repo_objects(paths, ignore_patterns=IGNORE_PATTERNS))
    assert kept == ["README.md", "data/m5/train-00000-of-00001.parquet"]
