"""A local stand-in for the Hugging Face Hub HTTP API, for testing uploads without a network.

It implements only the routes that ``huggingface_hub`` (2.x) calls for
``HfApi.create_repo`` + ``HfApi.create_branch`` + ``HfApi.upload_folder`` +
``HfApi.repo_info`` when every file is sent inline (no LFS / Xet storage):

==========================================================  ====================================
``POST /api/repos/create``                                    create a repo (409 if it exists)
``POST /api/validate-yaml``                                   dataset-card check (see ``yaml_errors``)
``GET  /api/{type}s/{ns}/{name}[/revision/{rev}]``            repo info (id, private, sha)
``POST /api/{type}s/{ns}/{name}/branch/{branch}``             create a branch (409 if it exists)
``POST /api/{type}s/{ns}/{name}/preupload/{rev}``             answers ``"regular"`` for every file
``POST /api/{type}s/{ns}/{name}/commit/{rev}``                NDJSON commit, base64 file content
``GET|HEAD [/{type}s]/{ns}/{name}/resolve/{rev}/{file}``        a file of a public repo (no token
                                                              needed, as on the Hub; 404 for an
                                                              unknown revision or file)
==========================================================  ====================================

Requests are answered the way the Hub does (status codes, ``X-Error-Code`` /
``X-Error-Message`` headers, JSON ``{"error": ...}`` bodies), so the client's own error
handling runs. Every request and every commit is recorded for the test to inspect; a route
not listed above is answered 404 and recorded in :attr:`LocalHub.unexpected`.

This exercises the real client against an HTTP server; it fakes nothing of our own code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

#: The message the Hub sends with a 401 for a token it does not know.
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"

_RESOLVE_ROUTE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$"
)
_REPO_ROUTE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
    r"(?:/(?P<action>preupload|commit|branch|revision)/(?P<rev>.+))?$"
)


@dataclass
class Commit:
    """One commit received by the local Hub."""

    repo_type: str
    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]


@dataclass
class Repo:
    """State of one repository on the local Hub: visibility and file tree per branch."""

    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    heads: dict[str, str] = field(default_factory=lambda: {"main": "0" * 40})


class LocalHub:
    """Threaded HTTP server on 127.0.0.1 (free port) that speaks a subset of the Hub API.

    Parameters
    ----------
    token : str
        The only bearer token accepted; other or missing tokens get a 401.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``, to pass as ``endpoint``.
    repos : dict[tuple[str, str], Repo]
        Keyed by (repo_type, repo_id).
    commits : list[Commit]
        Every accepted commit, in order.
    requests : list[tuple[str, str]]
        (method, path) of every request received.
    unexpected : list[tuple[str, str]]
        Requests to routes this server does not implement.
    validated_cards : list[str]
        README contents sent to ``/api/validate-yaml``.
    yaml_errors : list[str]
        Set by a test to make ``/api/validate-yaml`` reject the card (400) with these messages,
        as the Hub does for invalid card metadata; empty: every card is accepted.
    """

    def __init__(self, token: str = "hf_test") -> None:
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.commits: list[Commit] = []
        self.requests: list[tuple[str, str]] = []
        self.unexpected: list[tuple[str, str]] = []
        self.validated_cards: list[str] = []
        self.yaml_errors: list[str] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                hub._dispatch(self, "GET")

            def do_HEAD(self) -> None:
                hub._dispatch(self, "HEAD")

            def do_POST(self) -> None:
                hub._dispatch(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # a short poll interval: shutdown() waits up to one interval
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="local-hub", daemon=True)

    def __enter__(self) -> "LocalHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _reply(handler, status: int, body: dict | None = None, error: str | None = None,
               error_code: str | None = None) -> None:
        if error is not None:
            body = {**(body or {}), "error": error}
        data = json.dumps(body if body is not None else {}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if error is not None:
            handler.send_header("X-Error-Message", error)
        if error_code is not None:
            handler.send_header("X-Error-Code", error_code)
        handler.end_headers()
        handler.wfile.write(data)

    def _dispatch(self, handler, method: str) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, path))
            resolve = _RESOLVE_ROUTE.match(path) if method in ("GET", "HEAD") else None
            if resolve is not None:
                return self._resolve(handler, method, resolve)
            if handler.headers.get("Authorization") != f"Bearer {self.token}":
                return self._reply(handler, 401, error=INVALID_TOKEN_MESSAGE)
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(handler, json.loads(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(handler, json.loads(body))
            match = _REPO_ROUTE.match(path)
            if match is None:
                self.unexpected.append((method, path))
                return self._reply(handler, 404, error=f"no route {method} {path}")
            repo_type = match["type"][:-1]
            repo_id = f"{unquote(match['ns'])}/{unquote(match['name'])}"
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                return self._reply(handler, 404, error="Repository not found", error_code="RepoNotFound")
            action, rev = match["action"], unquote(match["rev"] or "main")
            if method == "GET" and action in (None, "revision"):
                return self._repo_info(handler, repo, rev)
            if method == "POST" and action == "branch":
                return self._create_branch(handler, repo, rev)
            if rev not in repo.branches:
                return self._reply(handler, 404, error=f"Invalid rev id: {rev}", error_code="RevisionNotFound")
            if method == "POST" and action == "preupload":
                return self._preupload(handler, json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit(handler, repo, rev, body)
            self.unexpected.append((method, path))
            return self._reply(handler, 404, error=f"no route {method} {path}")

    # ------------------------------------------------------------------ routes

    def _create_repo(self, handler, payload: dict) -> None:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.url}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.repos:  # the Hub's 409 body carries the repo url too
            return self._reply(handler, 409, {"url": url}, error=f"You already created this {repo_type} repo")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private)
        return self._reply(handler, 200, {"url": url, "name": repo_id})

    def _validate_yaml(self, handler, payload: dict) -> None:
        self.validated_cards.append(payload["content"])
        if self.yaml_errors:
            return self._reply(handler, 400, {"errors": [{"message": m} for m in self.yaml_errors], "warnings": []})
        return self._reply(handler, 200, {"errors": [], "warnings": []})

    def _repo_info(self, handler, repo: Repo, rev: str) -> None:
        if rev not in repo.heads:
            return self._reply(handler, 404, error=f"Invalid rev id: {rev}", error_code="RevisionNotFound")
        siblings = [{"rfilename": name} for name in sorted(repo.branches[rev])]
        return self._reply(handler, 200, {"id": repo.repo_id, "private": repo.private,
                                          "sha": repo.heads[rev], "siblings": siblings})

    def _resolve(self, handler, method: str, match) -> None:
        """A file's bytes (GET) or only its headers (HEAD), with an ETag as the Hub sends."""
        repo_type = (match["type"] or "models")[:-1]
        repo = self.repos.get((repo_type, f"{unquote(match['ns'])}/{unquote(match['name'])}"))
        rev, name = unquote(match["rev"]), unquote(match["file"])

        def not_found(error: str, code: str) -> None:
            if method == "GET":
                return self._reply(handler, 404, error=error, error_code=code)
            handler.send_response(404)          # HEAD: headers only, no body
            handler.send_header("X-Error-Code", code)
            handler.send_header("X-Error-Message", error)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None

        if repo is None or (repo.private and handler.headers.get("Authorization") != f"Bearer {self.token}"):
            return not_found("Repository not found", "RepoNotFound")
        if rev not in repo.branches:
            return not_found(f"Invalid rev id: {rev}", "RevisionNotFound")
        data = repo.branches[rev].get(name)
        if data is None:
            return not_found("Entry not found", "EntryNotFound")
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        handler.end_headers()
        if method == "GET":
            handler.wfile.write(data)
        return None

    def _create_branch(self, handler, repo: Repo, branch: str) -> None:
        if branch in repo.branches:
            return self._reply(handler, 409, error=f"Reference {branch} already exists")
        repo.branches[branch] = dict(repo.branches["main"])
        repo.heads[branch] = repo.heads["main"]
        return self._reply(handler, 200, {})

    def _preupload(self, handler, payload: dict) -> None:
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                 for f in payload["files"]]
        return self._reply(handler, 200, {"files": files})

    def _commit(self, handler, repo: Repo, rev: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._reply(handler, 400, error="commit payload must start with a header line")
        files: dict[str, bytes] = {}
        other: list[dict] = []
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            else:
                other.append(line)
        if other:
            return self._reply(handler, 400, error=f"this local hub only accepts inline files, got {other[0]['key']}")
        repo.branches[rev].update(files)
        oid = hashlib.sha1(repo.heads[rev].encode() + body).hexdigest()
        repo.heads[rev] = oid
        self.commits.append(Commit(repo.repo_type, repo.repo_id, rev, lines[0]["value"]["summary"], files))
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return self._reply(handler, 200, {"commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{oid}",
                                          "commitOid": oid})
