"""``ct-degradbench build --engine ray`` on a local two-worker Ray cluster: the same bytes as
the local build, resumed shard by shard, and unaffected by a worker killed mid-build.

The cluster is started on the loopback address with ``ray start --head --num-cpus 2`` (two
worker processes) and stopped with ``ray stop``; without the ``ray`` package these tests are
skipped (``pip install 'ct-degradbench[ray]'``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ctdegradbench.core.errors import OptionError
from ctdegradbench.builder.dataset.build import build_dataset
from ctdegradbench.builder.dataset.export import MANIFEST
from ctdegradbench.builder.dataset.options import BuildOptions
from ctdegradbench.builder.sources.options import SourceOptions

# ray is not imported here: it reads its token settings (RAY_AUTH_*) when first imported
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the ray package is not installed: pip install 'ct-degradbench[ray]'")

IMAGE_SIZE = 64
PIXEL_MM = 2.0
CONFIGS = ("single_noise", "mixture_m3")
RAY_TIMEOUT_S = 180           # any ray command; the cluster is on a loaded 2-core machine in CI
WORKER_TITLE = b"ray::simulate_shard"   # process title of a Ray worker running a shard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """Address of a fresh local Ray head with two CPUs (two worker processes) on 127.0.0.1."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-ct-", dir="/tmp")     # short: Ray's socket paths have a length limit
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    env = dict(os.environ, **auth)
    subprocess.run(["timeout", str(RAY_TIMEOUT_S), ray_cli, "start", "--head", "--num-cpus", "2",
                    "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false",
                    "--object-store-memory", str(200 * 1024 ** 2), "--temp-dir", temp, "--disable-usage-stats"],
                   check=True, capture_output=True, env=env)
    try:
        with pytest.MonkeyPatch.context() as patch:       # this cluster's token, for the drivers of these tests
            for name, value in auth.items():
                patch.setenv(name, value)
            yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["timeout", str(RAY_TIMEOUT_S), ray_cli, "stop", "--force"], capture_output=True, env=env)


@pytest.fixture(scope="module")
def source(nifti_body_source) -> Path:
    return nifti_body_source(3, 2, IMAGE_SIZE, PIXEL_MM)      # 6 slices, 2 per split


def _options(source, out, **extra) -> BuildOptions:
    return BuildOptions(out=out, configs=CONFIGS, allow_uncalibrated_grid=True,
                        source=SourceOptions(sources=(str(source),), image_size=IMAGE_SIZE), **extra)


@pytest.fixture(scope="module")
def local_export(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "bench"
    build_dataset(_options(source, out))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_export(a: Path, b: Path) -> None:
    """Every file byte for byte, except what a build measures: the card's wall-time line and,
    in the manifest, the creation time and the card's own hash."""
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name not in ("README.md", MANIFEST):
            assert fa[name] == fb[name], f"{name} differs"
    card = [[line for line in f["README.md"].decode().splitlines() if not line.startswith("- wall time ")]
            for f in (fa, fb)]
    assert card[0] == card[1]
    manifests = [json.loads(f[MANIFEST]) for f in (fa, fb)]
    for m in manifests:
        m.pop("created"), m["files"].pop("README.md")
    assert manifests[0] == manifests[1]
    assert any(name.endswith(".parquet") for name in fa)


@needs_ray
def test_ray_build_is_bit_identical_to_the_local_build(ray_cluster, source, local_export, tmp_path, capsys):
    out = tmp_path / "bench"
    build_dataset(_options(source, out, engine="ray", address=ray_cluster, shard_size=1))
    assert_same_export(local_export, out)
    progress = capsys.readouterr().err
    assert "ray: shard 6/6  rows 48/48" in progress          # 6 slices x 2 settings x 4 levels


@needs_ray
def test_ray_build_resumes_the_missing_shards_only(ray_cluster, source, local_export, tmp_path, capsys):
    cache = tmp_path / "cache"
    out = tmp_path / "bench"
    build_dataset(_options(source, out, engine="ray", address=ray_cluster, shard_size=2, cache_dir=cache))
    shards = sorted((cache / "ray").glob("*.samples.arrow"))
    assert len(shards) == 3                                   # one shard of 2 slices per split
    lost = shards[1]
    lost.unlink()                                             # a shard the stopped build had not finished
    lost.with_name(lost.name.replace(".samples.", ".references.")).unlink()
    capsys.readouterr()
    build_dataset(_options(source, out, engine="ray", address=ray_cluster, shard_size=2, cache_dir=cache,
                           overwrite=True))
    progress = capsys.readouterr().err
    assert "resuming, 2/3 shards (32 rows) already in the cache" in progress
    assert "ray: shard 1/1  rows 48/48" in progress           # only the lost shard was simulated
    assert len(list((cache / "ray").glob("*.arrow"))) == 6     # nothing stored twice
    assert_same_export(local_export, out)


def _shard_workers() -> list[int]:
    """Pids of this user's Ray workers that are running a shard now."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == os.getuid() \
                    and (entry / "cmdline").read_bytes().startswith(WORKER_TITLE):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@needs_ray
def test_a_worker_killed_mid_build_changes_nothing(ray_cluster, source, local_export, tmp_path):
    """SIGKILL one worker while it simulates a shard: Ray reruns the shard and the export is
    the same bytes."""
    out = tmp_path / "bench"
    command = [sys.executable, "-c", "import ct_degradbench, sys; sys.exit(ct_degradbench.main(sys.argv[1:]))",
               "build", "--source", str(source), "--image-size", str(IMAGE_SIZE), "--allow-uncalibrated-grid",
               "--configs", *CONFIGS, "--out", str(out), "--engine", "ray", "--address", ray_cluster,
               "--shard-size", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + RAY_TIMEOUT_S, None
    while time.monotonic() < deadline and process.poll() is None and killed is None:
        workers = _shard_workers()
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.05)
    _, err = process.communicate(timeout=RAY_TIMEOUT_S)
    assert process.returncode == 0, err
    if killed is None:
        pytest.skip("the build finished before a worker could be killed")
    assert_same_export(local_export, out)


def test_ray_options_are_checked_first(source, tmp_path):
    with pytest.raises(OptionError, match="--address 127.0.0.1:1 is the Ray cluster of --engine ray"):
        _options(source, tmp_path / "b", address="127.0.0.1:1")
    with pytest.raises(OptionError, match="--engine must be one of local, ray; got 'spark'"):
        _options(source, tmp_path / "b", engine="spark")
    with pytest.raises(OptionError, match="--num-proc 2 sizes a Ray instance started here"):
        _options(source, tmp_path / "b", engine="ray", address="auto", num_proc=2)


def test_engine_ray_without_the_package_is_one_line(source, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # as if not installed: import ray raises ImportError
    with pytest.raises(OptionError, match=r"--engine ray needs the ray package: pip install 'ct-degradbench\[ray\]'"):
        build_dataset(_options(source, tmp_path / "bench", engine="ray"))
    assert not (tmp_path / "bench").exists() and not (tmp_path / ".bench.partial").exists()
