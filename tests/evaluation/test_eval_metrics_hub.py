"""The metrics as the Hub serves them: ``ct-degradbench metrics push --namespace ORG`` against the
local Hub endpoint, then ``evaluate.load("ORG/<name>")`` in a fresh process that knows only the
endpoint (not our package's folders); and the local path form, offline, without the bare-name
registration."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ct_degradbench
from ctdegradbench.core.errors import RemoteError
from ctdegradbench.evaluation import METRIC_MODULES, metric_module_path
from ctdegradbench.evaluation.metrics_hub import push_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hub_endpoint import LocalHub  # noqa: E402  (the shared local Hub of tests/)

TOKEN = "hf_metrics"
#: evaluate.load of a Space module, then one compute with a known answer (Spearman of a monotone score = 1).
LOAD_FROM_HUB = (
    "import evaluate\n"
    "m = evaluate.load('lab/ct_severity_corr')\n"
    "print(m.compute(predictions=[0.3, 0.1, 0.2], references=[2, 0, 1])['spearman'])\n"
    "print(type(m).__module__)\n")


def _fresh_env(tmp_path, **extra):
    """Environment of a fresh Python whose evaluate / Hub caches are under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_MODULES_CACHE=str(tmp_path / "modules"), **extra)
    return env


def test_metrics_push_then_evaluate_load_org_name(tmp_path, capsys):
    with LocalHub(token=TOKEN) as hub:
        assert ct_degradbench.main(["metrics", "push", "--namespace", "lab", "--endpoint", hub.url,
                                    "--token", TOKEN]) == 0
        out = capsys.readouterr().out
        for name in METRIC_MODULES:
            assert f"evaluate.load('lab/{name}')" in out
            files = hub.repos[("space", f"lab/{name}")].branches["main"]
            assert set(files) == {f"{name}.py", "README.md", "app.py", "requirements.txt"}
            assert files[f"{name}.py"] == (metric_module_path(name) / f"{name}.py").read_bytes()
            meta = yaml.safe_load(files["README.md"].decode().split("---")[1])
            assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and "evaluate" in meta["tags"]
            assert f'evaluate.load("lab/{name}")' in files["app.py"].decode()
        assert hub.unexpected == []
        # a fresh process (cwd without the module folders) loads the Space's script through the endpoint
        done = subprocess.run([sys.executable, "-c", LOAD_FROM_HUB], cwd=tmp_path, capture_output=True, text=True,
                              env=_fresh_env(tmp_path, HF_ENDPOINT=hub.url), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        spearman, module = done.stdout.strip().splitlines()[-2:]
        assert float(spearman) == 1.0
        assert "lab--ct_severity_corr" in module                       # evaluate's name of a Hub module
        assert ("GET", "/spaces/lab/ct_severity_corr/resolve/main/ct_severity_corr.py") in hub.requests
        # a second push of the same files is one more commit per metric, nothing else
        commits = len(hub.commits)
        push_metrics("lab", ["ct_severity_corr"], endpoint=hub.url, token=TOKEN)
        assert len(hub.commits) == commits + 1
        with pytest.raises(RemoteError, match="HTTP 401"):
            push_metrics("lab", endpoint=hub.url, token="hf_wrong")


def test_metrics_push_rejects_a_bad_namespace(capsys):
    assert ct_degradbench.main(["metrics", "push", "--namespace", "lab/x", "--token", TOKEN]) == 2
    assert "--namespace" in capsys.readouterr().err


def test_path_form_loads_offline_without_registration(tmp_path):
    """evaluate.load(<the installed module's folder>): no Hub request, no evaluate-metric cache
    entry, no "Using the latest cached version" warning (what register_evaluate_modules causes)."""
    script = ("import evaluate\n"
              "from ctdegradbench.evaluation import metric_module_path\n"
              "m = evaluate.load(str(metric_module_path('ct_severity_estimation')))\n"
              "print(m.compute(predictions=[0, 1, 2], references=[0, 1, 2])['mae'])\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=_fresh_env(tmp_path, HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) == 0.0
    assert "cached version" not in done.stderr
    assert not list((tmp_path / "modules").rglob("evaluate-metric--*"))
