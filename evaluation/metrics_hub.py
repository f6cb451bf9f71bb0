"""The benchmark's ``evaluate`` modules as the Hub serves them, and the forms that load them.

``evaluate.load("ORG/NAME")`` downloads ``NAME.py`` from the **Space** ``ORG/NAME``
(``<endpoint>/spaces/ORG/NAME/resolve/<revision>/NAME.py``), as evaluate's own metrics live in
the ``evaluate-metric`` Spaces. :func:`push_metrics` writes each packaged module there: the
script, its README (with the Space's ``sdk: gradio`` / ``app_file`` front matter), an ``app.py``
that shows evaluate's widget, and ``requirements.txt``; one commit per module.

Which form works where (the README's table says the same):

===========================================  ===============================================
``load_metric("ct_severity_corr")``          anywhere our package is installed, offline
``evaluate.load(str(metric_module_path(n)))``  anywhere our package is installed, offline; a
                                             path, so evaluate asks no Hub and writes nothing
                                             but its usual import copy of the script
``evaluate.load("evaluation/ct_severity_corr")``  from the repository root (a checkout)
``evaluate.load("ORG/ct_severity_corr")``    anywhere with the Hub reachable, after
                                             ``ct-degradbench metrics push --namespace ORG``
``evaluate.load("ct_severity_corr")``        only after :func:`register_evaluate_modules`
                                             (writes evaluate's Hub cache; evaluate then logs
                                             "Using the latest cached version" on every load)
===========================================  ===============================================
"""

from __future__ import annotations

import re

from ctdegradbench.core.errors import OptionError, RemoteError
from ctdegradbench.evaluation import METRIC_MODULES, metric_module_path

#: Python packages a metric Space installs (the modules import these besides evaluate).
REQUIREMENTS = ("evaluate>=0.4.6", "datasets", "numpy", "scipy", "scikit-learn")
_SPACE_FRONT_MATTER = "sdk: gradio\napp_file: app.py\npinned: false\n"
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def space_files(name: str, namespace: str) -> dict[str, bytes]:
    """The files of the metric Space ``namespace/name``: ``{path in repo: content}``."""
    folder = metric_module_path(name)
    readme = (folder / "README.md").read_text(encoding="utf-8")
    if not readme.startswith("---\n"):
        raise OptionError(f"{folder / 'README.md'} has no YAML front matter")
    readme = "---\n" + _SPACE_FRONT_MATTER + readme[len("---\n"):]
    readme = readme.replace("## How to use\n", "## How to use\n\n```python\nimport evaluate\n"
                            f"metric = evaluate.load(\"{namespace}/{name}\")\n```\n", 1)
    app = ("import evaluate\nfrom evaluate.utils import launch_gradio_widget\n\n"
           f"module = evaluate.load(\"{namespace}/{name}\")\nlaunch_gradio_widget(module)\n")
    return {f"{name}.py": (folder / f"{name}.py").read_bytes(), "README.md": readme.encode("utf-8"),
            "app.py": app.encode("utf-8"), "requirements.txt": ("\n".join(REQUIREMENTS) + "\n").encode("utf-8")}


def push_metrics(namespace: str, names=METRIC_MODULES, *, token: str | None = None, endpoint: str | None = None,
                 private: bool = False) -> dict[str, str]:
    """Create (if missing) the Space ``namespace/<name>`` of each metric and commit its files.

    Returns ``{name: commit URL}``. After it, ``evaluate.load("namespace/<name>")`` loads the
    module from the Hub at ``endpoint``.

    Raises
    ------
    OptionError
        A namespace the Hub would refuse, or an unknown metric name.
    RemoteError
        Offline mode, no token, an unreachable endpoint or a refusal (with the server's message).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ctdegradbench.builder.dataset.hub import http_refusal, one_line, resolve_token, transport_errors

    if not _NAMESPACE.match(namespace or "") or namespace.endswith((".", "-")):
        raise OptionError(f"--namespace must be a Hub user or organisation name (letters, digits, '-', '_', '.'), "
                          f"got {namespace!r}")
    files = {name: space_files(name, namespace) for name in names}      # unknown names fail before any upload
    if constants.HF_HUB_OFFLINE:
        raise RemoteError("offline mode is on (HF_HUB_OFFLINE is set): unset it to push the metrics")
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    urls = {}
    for name, content in files.items():
        repo_id = f"{namespace}/{name}"
        try:
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            info = api.create_commit(repo_id, repo_type="space", commit_message=f"CT-DegradBench metric {name}",
                                     operations=[CommitOperationAdd(path, data) for path, data in content.items()])
        except OfflineModeIsEnabled as err:
            raise RemoteError(f"offline mode is on: {one_line(err)}") from None
        except HfHubHTTPError as err:
            raise RemoteError(f"the Hub at {api.endpoint} refused the Space {repo_id} with {http_refusal(err)}; "
                              f"pushed so far: {', '.join(urls) or 'none'}") from None
        except transport_errors() as err:
            raise RemoteError(f"cannot reach the Hub at {api.endpoint}: {type(err).__name__}: {one_line(err)}") from None
        urls[name] = str(info.commit_url)
    return urls


def load_forms(name: str) -> list[tuple[str, str]]:
    """(where it works, Python line) for each way to load the metric ``name``."""
    path = metric_module_path(name)
    return [("installed package, offline", f"ctdegradbench.evaluation.load_metric({name!r})"),
            ("installed package, offline (evaluate's loader, a path)", f"evaluate.load({str(path)!r})"),
            ("repository root (a checkout)", f"evaluate.load('evaluation/{name}')"),
            ("Hub, after `ct-degradbench metrics push --namespace ORG`", f"evaluate.load('ORG/{name}')")]
