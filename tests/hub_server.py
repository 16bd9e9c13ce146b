"""A small Hugging Face Hub-compatible server for tests, on 127.0.0.1, with real git-like revisions.

It answers the requests huggingface_hub 2.x makes to download and upload model repos, the way the
Hub answers them, so tests run the real client end to end over real HTTP:

    GET  /api/models/{repo}[/revision/{rev}]        model info: sha, siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]     file list: git oid, size, lfs {oid, size, pointerSize}
    HEAD|GET /{repo}/resolve/{rev}/{path}           a regular file: 200, ETag = git blob id;
                                                    an LFS file: 302 to storage, X-Linked-Etag = sha256
    POST /api/validate-yaml                         a model card's front matter: 200, or 400 with errors
    POST /api/repos/create                          200, or 409 when it exists (with its url, as the Hub does)
    POST /api/models/{repo}/preupload/{rev}         uploadMode "lfs" or "regular" per file
    POST /{repo}.git/info/lfs/objects/batch         LFS "basic" transfer: where to PUT each object
    POST /api/models/{repo}/commit/{rev}            NDJSON commit: file (base64), lfsFile, deletedFile

A second server on another port plays the LFS storage host (the Hub's CDN / S3): GET|HEAD /{sha256}
and PUT /upload/{sha256}. Like on the Hub, large-file redirects leave the Hub's origin, so the client
downloads them without its auth header and from the redirect's own metadata.

Every commit gets a new 40-hex sha; branches point at shas; old commits stay fetchable by sha.
Misses answer 404 with the X-Error-Code huggingface_hub maps to RepositoryNotFoundError,
RevisionNotFoundError or (Remote)EntryNotFoundError. No Xet headers are ever sent, and there is no
authentication (every repo is readable and writable by every client). Files are only ever looked up
as keys of a commit or as content hashes, so no request can reach a path outside the object store.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import os
import re
import runpy
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")  # what GITATTRIBUTES tracks
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub refuses regular (non-LFS) files above 10 MB
NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob (`git hash-object`): what the Hub sends as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The small text file git stores in place of an LFS-tracked file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs_path(path: str, size: int) -> bool:
    """Whether a file is stored with LFS: tracked by .gitattributes, or too large for a regular blob."""
    return path.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE


@dataclass(frozen=True)
class Blob:
    """One file of a commit. Its bytes live in the object store under `sha256`."""

    sha256: str
    size: int
    lfs: bool
    oid: str  # the git blob id; for an LFS file, that of its pointer (as on the Hub)

    @classmethod
    def of(cls, sha256: str, size: int, lfs: bool, data: bytes = b"") -> Blob:
        return cls(sha256, size, lfs, git_blob_id(lfs_pointer(sha256, size) if lfs else data))


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """The commit a branch name or a full sha names, else RevisionNotFound."""
        sha = self.branches.get(revision, revision)
        if sha not in self.commits:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.commits[sha]


class HubError(Exception):
    """An error answer: status, the Hub's X-Error-Code (or None) and message."""

    def __init__(self, status: int, code: str | None, message: str, headers: Mapping[str, str] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # streamed instead of `body`


def json_reply(obj: object, status: int = 200) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(obj).encode())


def check_path(path: str) -> str:
    """A repo file path: relative, '/'-separated, no empty, '.' or '..' parts."""
    parts = path.split("/")
    if not path or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, None, f"invalid path in repo: {path!r}")
    return path


class LocalHub:
    """The server: repos and an object store under `root`, answering on `endpoint` once started.

    Tests seed repos directly (`create_repo`, `commit`, `create_branch`) or through huggingface_hub's
    upload API; `requests` / `storage_requests` log every (method, path) received, in order, and
    `errors` holds the traceback of any request the server itself failed on.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.objects = Path(root) / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.storage_requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._pending_lfs: dict[str, int] = {}  # sha256 -> size, announced by the batch API
        self._serial = itertools.count()
        self._hub = _Server(self, "hub")
        self._storage = _Server(self, "storage")
        self.endpoint = f"http://127.0.0.1:{self._hub.server_port}"
        self.storage_url = f"http://127.0.0.1:{self._storage.server_port}"
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalHub:
        for server in (self._hub, self._storage):
            # a short poll interval: stop() waits for it
            serve = functools.partial(server.serve_forever, poll_interval=0.05)
            thread = threading.Thread(target=serve, name=f"local-hub-{server.role}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop answering: later connections to `endpoint` are refused."""
        if self._threads:  # running: end the serve loops first (a second stop() only closes again)
            for server in (self._hub, self._storage):
                server.shutdown()
            for thread in self._threads:
                thread.join()
            self._threads = []
        for server in (self._hub, self._storage):
            server.server_close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- seeding and inspection (what the Hub's web UI / git would do) ---

    def create_repo(self, repo_id: str, private: bool = False) -> str:
        """A new repo whose `main` holds one commit with .gitattributes, as on the Hub; returns its sha."""
        ns, _, name = repo_id.partition("/")
        if not (NAME.match(ns) and NAME.match(name)):
            raise HubError(400, None, f"invalid repo id {repo_id!r}")
        with self._lock:
            if repo_id in self.repos:
                raise HubError(409, None, "You already created this model repo")
            self.repos[repo_id] = Repo(repo_id, private)
            return self._commit(
                repo_id, "main", "initial commit", {".gitattributes": self._store(GITATTRIBUTES)}
            )

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        branch: str = "main",
        message: str = "Upload files",
        delete: Iterable[str] = (),
    ) -> str:
        """Add/replace `files` (path -> content) and delete paths on `branch`; returns the new sha."""
        blobs = {check_path(p): self._store(data, p) for p, data in files.items()}
        return self._commit(repo_id, branch, message, blobs, delete)

    def create_branch(self, repo_id: str, branch: str, revision: str) -> None:
        with self._lock:
            repo = self._repo(repo_id)
            repo.branches[branch] = repo.resolve(revision).sha

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self._repo(repo_id).resolve(branch).sha

    def read(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        """The content of one file at a revision."""
        return (self.objects / self._repo(repo_id).resolve(revision).files[path].sha256).read_bytes()

    def files(self, repo_id: str, revision: str = "main") -> list[str]:
        return sorted(self._repo(repo_id).resolve(revision).files)

    # --- storage ---

    def _store(self, data: bytes, path: str = "") -> Blob:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.objects / sha256
        if not target.exists():
            tmp = target.with_name(f".{sha256}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return Blob.of(sha256, len(data), is_lfs_path(path, len(data)), data)

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, "RepoNotFound", "Repository not found")
        return self.repos[repo_id]

    def _commit(
        self, repo_id: str, branch: str, message: str, add: Mapping[str, Blob], delete: Iterable[str] = ()
    ) -> str:
        with self._lock:
            repo = self._repo(repo_id)
            parent = repo.commits[repo.branches[branch]] if branch in repo.branches else None
            files = dict(parent.files) if parent else {}
            for path in delete:
                if files.pop(path, None) is None:
                    raise HubError(404, "EntryNotFound", f"cannot delete {path}: no such file")
            files.update(add)
            record = {
                "repo": repo_id,
                "parent": parent.sha if parent else None,
                "message": message,
                "files": {p: b.oid for p, b in sorted(files.items())},
                "serial": next(self._serial),  # two identical commits are still two commits
            }
            sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
            date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            repo.commits[sha] = Commit(sha, record["parent"], message, date, files)
            repo.branches[branch] = sha
            return sha

    # --- the HTTP API ---

    def answer(self, role: str, method: str, target: str, body: bytes) -> Reply:
        """The reply to one request; `target` is the raw request path with its query."""
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if role == "storage":
                return self._answer_storage(method, parts, body)
            return self._answer_hub(method, parts, query, body)
        except HubError as e:
            headers = {"X-Error-Message": e.message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            reply = json_reply({"error": e.message}, e.status)
            reply.headers.update(headers)
            return reply

    def _answer_hub(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> Reply:
        match method, parts:
            case "GET", ["api", "models", ns, name]:
                return self._model_info(f"{ns}/{name}", "main")
            case "GET", ["api", "models", ns, name, "revision", rev]:
                return self._model_info(f"{ns}/{name}", rev)
            case "GET", ["api", "models", ns, name, "tree", rev, *path]:
                recursive = query.get("recursive", "").lower() in ("1", "true")
                return self._tree(f"{ns}/{name}", rev, "/".join(path), recursive)
            case "GET" | "HEAD", [ns, name, "resolve", rev, *path] if path:
                return self._resolve(f"{ns}/{name}", rev, "/".join(path))
            case "POST", ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            case "POST", ["api", "validate-yaml"]:
                return self._validate_yaml(json.loads(body)["content"])
            case "POST", ["api", "models", ns, name, "preupload", rev]:
                return self._preupload(f"{ns}/{name}", rev, json.loads(body))
            case "POST", [ns, git_name, "info", "lfs", "objects", "batch"] if git_name.endswith(".git"):
                return self._lfs_batch(f"{ns}/{git_name[:-4]}", json.loads(body))
            case "POST", ["api", "models", ns, name, "commit", rev]:
                return self._commit_ndjson(f"{ns}/{name}", rev, body)
        raise HubError(404, None, "Not Found")

    def _model_info(self, repo_id: str, revision: str) -> Reply:
        repo = self._repo(repo_id)
        commit = repo.resolve(revision)
        return json_reply(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": commit.date,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            }
        )

    def _tree(self, repo_id: str, revision: str, path: str, recursive: bool) -> Reply:
        commit = self._repo(repo_id).resolve(revision)
        prefix = f"{path}/" if path else ""
        below = sorted(p for p in commit.files if p.startswith(prefix))
        if path and not below:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        entries: dict[str, dict] = {}
        for p in below:
            rest = p[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # the folders on the way to the file
                folder = prefix + "/".join(rest[:depth])
                oid = hashlib.sha1(folder.encode() + commit.sha.encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": oid, "size": 0, "path": folder})
                if not recursive:
                    break
            if len(rest) == 1 or recursive:
                blob = commit.files[p]
                entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": p}
                if blob.lfs:
                    pointer_size = len(lfs_pointer(blob.sha256, blob.size))
                    entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": pointer_size}
                entries[p] = entry
        return json_reply(list(entries.values()))

    def _resolve(self, repo_id: str, revision: str, path: str) -> Reply:
        commit = self._repo(repo_id).resolve(revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers |= {
                "Location": f"{self.storage_url}/{blob.sha256}",
                "ETag": f'"{blob.oid}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(blob.size),
            }
            return Reply(302, headers)
        headers["ETag"] = f'"{blob.oid}"'
        return Reply(200, headers, file=self.objects / blob.sha256)

    def _create_repo(self, payload: dict) -> Reply:
        if payload.get("type", "model") != "model":
            raise HubError(400, None, "this server holds model repos only")
        if not payload.get("organization"):
            raise HubError(400, None, "a namespace is required (there are no users to default to)")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.endpoint}/{repo_id}"
        try:
            self.create_repo(repo_id, private=payload.get("visibility") == "private")
        except HubError as e:
            if e.status == 409:
                return json_reply({"error": e.message, "url": url}, 409)
            raise
        return json_reply(
            {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}
        )

    def _validate_yaml(self, readme: str) -> Reply:
        """Check a model card's YAML front matter, as the Hub does before an upload."""
        import yaml

        match = re.match(r"^---\n(.*?)\n---\n", readme, re.DOTALL)
        try:
            metadata = yaml.safe_load(match[1]) if match else {}
        except yaml.YAMLError as e:
            problem = f"invalid YAML: {' '.join(str(e).split())}"
        else:
            problem = None if isinstance(metadata, dict | None) else "metadata must be a YAML mapping"
        if problem:
            return json_reply({"errors": [{"message": problem}], "warnings": []}, 400)
        return json_reply({"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, revision: str, payload: dict) -> Reply:
        commit = self._repo(repo_id).resolve(revision)
        files = []
        for f in payload["files"]:
            lfs = is_lfs_path(f["path"], f["size"])
            answer = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            remote = commit.files.get(f["path"])
            if remote is not None:  # lets the client skip unchanged files; sha256 for LFS, as on the Hub
                answer["oid"] = remote.sha256 if remote.lfs else remote.oid
            files.append(answer)
        return json_reply({"files": files, "commitOid": commit.sha})

    def _lfs_batch(self, repo_id: str, payload: dict) -> Reply:
        self._repo(repo_id)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, None, "only LFS uploads with the basic transfer are supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            answer = {"oid": oid, "size": size, "authenticated": True}
            if not (self.objects / oid).exists():  # present objects get no actions: nothing to upload
                with self._lock:
                    self._pending_lfs[oid] = size
                answer["actions"] = {
                    "upload": {"href": f"{self.storage_url}/upload/{oid}", "expires_in": 3600}
                }
            objects.append(answer)
        reply = json_reply({"transfer": "basic", "objects": objects})
        reply.headers["Content-Type"] = "application/vnd.git-lfs+json"
        return reply

    def _commit_ndjson(self, repo_id: str, revision: str, body: bytes) -> Reply:
        repo = self._repo(repo_id)
        if revision not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, None, "the commit payload must start with a header line")
        message = lines[0]["value"]["summary"]
        add: dict[str, Blob] = {}
        delete: list[str] = []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = check_path(value["path"])
            if key == "file" and value.get("encoding") == "base64":
                add[path] = self._store(base64.b64decode(value["content"]), path)
            elif key == "lfsFile":
                oid = str(value["oid"])
                stored = self.objects / oid
                if not (SHA256.match(oid) and stored.exists() and stored.stat().st_size == value["size"]):
                    raise HubError(422, None, f"{path}: LFS object {value['oid']} was never uploaded")
                add[path] = Blob.of(value["oid"], value["size"], lfs=True)
            elif key == "deletedFile":
                delete.append(path)
            else:
                raise HubError(400, None, f"unsupported commit operation {key!r}")
        sha = self._commit(repo_id, revision, message, add, delete)
        return json_reply(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}",
                "pullRequestUrl": None,
            }
        )

    def _answer_storage(self, method: str, parts: list[str], body: bytes) -> Reply:
        match method, parts:
            case "GET" | "HEAD", [oid] if SHA256.match(oid) and (self.objects / oid).exists():
                headers = {"ETag": f'"{oid}"', "Content-Type": "application/octet-stream"}
                return Reply(200, headers, file=self.objects / oid)
            case "PUT", ["upload", oid] if SHA256.match(oid):
                with self._lock:
                    size = self._pending_lfs.pop(oid, None)
                if size is None:
                    raise HubError(403, None, "no upload was announced for this object")
                if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
                    raise HubError(400, None, "uploaded content does not match its oid and size")
                self._store(body)
                return Reply(200)
        raise HubError(404, None, "Not Found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: LocalHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub, self.role = hub, role


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing stays open after stop()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        hub = self.server.hub
        (hub.storage_requests if self.server.role == "storage" else hub.requests).append((method, self.path))
        try:
            reply = hub.answer(self.server.role, method, self.path, self._read_body())
        except Exception:  # a bug in this server: the fixture fails the test on `errors`
            hub.errors.append(traceback.format_exc())
            reply = json_reply({"error": "internal error"}, 500)
        size = reply.file.stat().st_size if reply.file is not None else len(reply.body)
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if method == "HEAD":
            return
        if reply.file is not None:
            with reply.file.open("rb") as f:
                while chunk := f.read(1 << 20):
                    self.wfile.write(chunk)
        else:
            self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args) -> None:
        """Quiet: requests are logged in `LocalHub.requests` instead of on stderr."""


def sync_hub_client() -> dict[str, object]:
    """huggingface_hub's settings re-read from the current environment: {constant name: value}.

    huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_HUB_DISABLE_XET... once, into
    `huggingface_hub.constants`, when it is first imported; in a pytest process that may have
    happened in an earlier test, under another HF_HOME. So changing the environment does not reach
    this process's client (child processes read it afresh). Running constants.py again gives the
    values it would read now; the caller sets the ones that changed (with monkeypatch, so they are
    restored after the test).
    """
    from huggingface_hub import constants

    fresh = runpy.run_path(constants.__file__)
    return {k: v for k, v in fresh.items() if k.isupper() and getattr(constants, k, None) != v}
