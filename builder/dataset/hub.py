"""Upload an exported CT-DegradBench dataset folder to the Hugging Face Hub.

``ct-degradbench build`` writes a Hub-style folder: ``README.md`` (dataset card whose YAML
front matter declares ``configs:`` with ``data_files`` per split), the Parquet shards
``data/<config>/<split>-0000i-of-0000n.parquet`` and ``images/*.png``. :func:`push_folder`
checks that folder (:func:`check_dataset_folder`), creates the dataset repository if it is
missing and uploads the folder with ``huggingface_hub``'s ``HfApi.upload_folder``, which shows
its own progress display.

With ``hf_xet`` installed (a dependency of huggingface_hub 2.x on common platforms),
``upload_folder`` commits a folder of more than about 256 files in several commits
("... (part 2)", ...); re-running the same push resumes and skips files already on the Hub.

Every failure the user can fix (bad repo id, missing token, offline mode, no network, a
refusal by the server, an unfinished build folder) raises :class:`PushError` with a one-line
message, so the command line prints one line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from ctdegradbench.core.errors import InputError, RemoteError
from ctdegradbench.builder.dataset.reader import ExportedFolder

#: Suffix of the folder a build writes into before renaming it to its final name.
PARTIAL_SUFFIX = ".partial"
#: Marker file a build leaves in a folder it has not finished.
INCOMPLETE_MARKER = ".incomplete"
#: Paths (fnmatch patterns, relative to the folder) never uploaded: unfinished build folders
#: and local caches. huggingface_hub adds its own defaults (.git, .cache/huggingface).
IGNORE_PATTERNS = ["*.partial", "*.partial/*", ".cache", ".cache/*", "*/.cache/*", INCOMPLETE_MARKER]


class PushError(RemoteError):
    """A push that cannot proceed; the message is one line meant for the user."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it has the form ``ORG/NAME`` accepted by the Hub.

    The character rules are huggingface_hub's (``utils.validate_repo_id``); the namespace
    is required here so that the target is never guessed from the token's user.

    Raises
    ------
    PushError
        If ``repo_id`` is not ``ORG/NAME`` with allowed characters.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise PushError(f"invalid repo id {repo_id!r}: expected ORG/NAME (one '/')")
    try:
        hub_validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(f"invalid repo id (expected ORG/NAME): {one_line(err)}") from None
    return repo_id


def check_dataset_folder(folder: str | Path) -> list[Path]:
    """Check that ``folder`` is a finished dataset export, ready to push.

    Requirements: the folder exists; it is not an unfinished build (its name does not end in
    ``.partial`` and it holds no ``.incomplete`` marker); ``README.md`` has YAML front matter
    with a non-empty ``configs:`` list; every ``data_files`` path pattern of every config
    matches at least one file; there is at least one ``data/**/*.parquet``.

    Parameters
    ----------
    folder : str or Path
        The exported dataset folder.

    Returns
    -------
    list of Path
        The Parquet shards under ``folder/data``, sorted.

    Raises
    ------
    PushError
        Naming the folder or file and what is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"dataset folder {folder} does not exist or is not a directory")
    if folder.name.endswith(PARTIAL_SUFFIX):
        raise PushError(f"{folder} is an unfinished build ('{PARTIAL_SUFFIX}' folder); rerun the build")
    markers = sorted(folder.rglob(INCOMPLETE_MARKER))
    if markers:
        raise PushError(f"{folder} is an unfinished build (marker {markers[0]}); rerun the build")
    try:
        export = ExportedFolder(folder)
    except InputError as err:
        raise PushError(str(err)) from None
    for name, splits in export.patterns.items():
        patterns = [p for split_patterns in splits.values() for p in split_patterns]
        if not patterns:
            raise PushError(f"{export.readme}: config {name!r} has no data_files")
        for pattern in patterns:
            if not any(path.is_file() for path in folder.glob(pattern)):
                raise PushError(f"{export.readme}: config {name!r} names data_files {pattern!r}, which match no file")
    shards = sorted((folder / "data").rglob("*.parquet"))
    if not shards:
        raise PushError(f"{folder} has no data/**/*.parquet files")
    return shards


def http_refusal(err) -> str:
    """``"HTTP <status>: <the server's message>"`` of a huggingface_hub ``HfHubHTTPError``, on one line."""
    status = err.response.status_code if err.response is not None else "?"
    detail = err.server_message or str(err).strip().splitlines()[0]
    return f"HTTP {status}: {one_line(detail)}"


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exception classes the installed HTTP clients raise when no connection is possible."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def resolve_token(token: str | None = None) -> str:
    """The token to push with: ``token`` if given, else the one huggingface_hub finds
    (``HF_TOKEN``, then the file written by ``hf auth login``).

    Raises
    ------
    PushError
        If there is none.
    """
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PushError(
            "no Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token (a token with write access)"
        )
    return token


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a dataset export to the dataset repository ``repo_id`` on the Hub.

    Creates the repository if it is missing (private if ``private``), creates the branch
    ``revision`` if it is missing, and uploads every file of ``folder`` except
    :data:`IGNORE_PATTERNS` with ``HfApi.upload_folder`` (``repo_type="dataset"``).

    Parameters
    ----------
    folder : str or Path
        The exported dataset folder (see :func:`check_dataset_folder`).
    repo_id : str
        ``ORG/NAME`` of the dataset repository.
    token : str, optional
        Hub token with write access; default: the one huggingface_hub finds.
    private : bool
        Create the repository private. If it already exists and is public, the push is
        refused rather than publishing the data.
    revision : str, optional
        Branch to commit to; default: the repository's default branch.
    endpoint : str, optional
        Hub URL; default: huggingface_hub's (``HF_ENDPOINT`` or https://huggingface.co).
    commit_message : str, optional
        Summary of the commit.

    Returns
    -------
    str
        URL of the (last) commit.

    Raises
    ------
    PushError
        For a bad repo id or folder, a missing token, offline mode, an unreachable endpoint
        or an HTTP error from the server (with the server's message).
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    validate_repo_id(repo_id)
    check_dataset_folder(folder)
    if constants.HF_HUB_OFFLINE:
        raise PushError("offline mode is on (HF_HUB_OFFLINE is set): unset HF_HUB_OFFLINE to push to the Hub")
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    try:
        api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
        if private and not api.repo_info(repo_id, repo_type="dataset").private:
            raise PushError(f"dataset repo {repo_id} already exists and is public; refusing a --private push")
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            revision=revision,
            commit_message=commit_message or "Upload CT-DegradBench dataset",
            ignore_patterns=list(IGNORE_PATTERNS),
        )
    except OfflineModeIsEnabled as err:
        raise PushError(f"offline mode is on: {one_line(err)}") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        request = err.response.request if err.response is not None else None
        where = f"{request.method} {request.url}" if request is not None else api.endpoint
        hint = "; check that the token has write access to this repo (`hf auth login`)" if status in (401, 403) else ""
        raise PushError(f"the Hub at {api.endpoint} refused {where} with {http_refusal(err)}{hint}") from None
    except ValueError as err:  # huggingface_hub's own checks, e.g. card metadata the Hub rejects
        raise PushError(f"upload to {api.endpoint} refused: {one_line(err)}") from None
    except transport_errors() as err:
        raise PushError(f"cannot reach the Hub at {api.endpoint}: {type(err).__name__}: {one_line(err)}") from None
    return str(info.commit_url)
