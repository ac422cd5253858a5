"""A small Hugging Face Hub-protocol server for tests (pure stdlib, in memory).

The Hub cannot be reached from the test machines, so tests run the real clients
(`huggingface_hub`, `datasets`, `diffusers`) over real HTTP against this server on
127.0.0.1. It speaks the endpoints those clients use (see
`shared/docs/hub-protocol.md`): repo create/delete/settings, validate-yaml, preupload,
LFS batch + PUT, NDJSON commits with git-like history, repo info, tree, paths-info,
refs, commits, branches, and `resolve` downloads with ETag, X-Repo-Commit and ranges.

Every request is recorded; a request no handler knows is answered 501 and recorded in
`unhandled`, so tests fail loudly when a client starts using a new endpoint.
Failures can be injected (`fail_next`) to test interrupted pushes.

    server = HubServer().start()
    os.environ["HF_ENDPOINT"] = server.endpoint  # before importing huggingface_hub
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Suffixes the Hub's default .gitattributes stores with LFS (shortened to what we meet).
LFS_SUFFIXES = (
    ".parquet", ".arrow", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack",
    ".npy", ".npz", ".pkl", ".pickle", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".webp",
    ".zip", ".gz", ".tar", ".zst", ".7z", ".dcm", ".img", ".model", ".tflite", ".ot",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Blob:
    """One file of a commit. LFS files keep their sha256; git oid is that of the pointer."""

    data: bytes
    lfs_oid: str | None = None

    @property
    def git_oid(self) -> str:
        return git_blob_sha1(lfs_pointer(self.lfs_oid, len(self.data)) if self.lfs_oid else self.data)

    @property
    def etag(self) -> str:
        return self.lfs_oid or self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/"):] in self.branches:
            return self.commits[self.branches[revision[len("refs/heads/"):]]]
        return self.commits.get(revision)


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    handled: bool


@dataclass
class InjectedFailure:
    method: str
    pattern: re.Pattern
    status: int
    times: int


class HubError(Exception):
    """Answered as an HTTP error with the Hub's `X-Error-Code` header and JSON body."""

    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


class Unhandled(Exception):
    """The request uses something this server does not implement."""


class HubServer:
    """In-memory Hub. Thread-safe; one instance serves a whole test session."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, namespace: str = "medicraft-test"):
        self.namespace = namespace
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[RequestRecord] = []
        self.unhandled: list[RequestRecord] = []
        self._failures: list[InjectedFailure] = []
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- helpers for tests -------------------------------------------------------------

    def fail_next(self, method: str, path_pattern: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests matching (method, regex on the path) with `status`."""
        with self._lock:
            self._failures.append(InjectedFailure(method.upper(), re.compile(path_pattern), status, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def check_no_unhandled(self, since: int = 0) -> None:
        """Raise AssertionError listing the unhandled requests recorded after index `since`."""
        new = self.unhandled[since:]
        if new:
            raise AssertionError(
                "the test Hub got requests it does not handle (extend tests/hub_server.py):\n"
                + "\n".join(f"  {r.method} {r.path} -> {r.status}" for r in new)
            )

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the test hub") from None

    def repo_is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        return self.repo(repo_id, repo_type).private

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision, as {path: content}."""
        with self._lock:
            commit = self.repo(repo_id, repo_type).resolve(revision)
            if commit is None:
                raise KeyError(f"no revision {revision!r} in {repo_type} repo {repo_id!r}")
            return {path: blob.data for path, blob in commit.files.items()}

    def _take_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and failure.pattern.search(path):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.status
        return None

    # -- state changes -----------------------------------------------------------------

    def _new_commit(self, repo: Repo, parent: str | None, title: str, message: str, files: dict[str, Blob]) -> Commit:
        self._commit_counter += 1
        listing = "\n".join(f"{path} {blob.git_oid}" for path, blob in sorted(files.items()))
        seed = f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{title}\n{self._commit_counter}\n{listing}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, message, now_iso(), files)
        repo.commits[commit.oid] = commit
        return commit

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, "You already created this repo", "RepoExists")
            repo = Repo(repo_type, repo_id, private, now_iso())
            # As the Hub does: every repo starts with a commit holding .gitattributes.
            initial = self._new_commit(repo, None, "initial commit", "", {".gitattributes": Blob(GITATTRIBUTES)})
            repo.branches["main"] = initial.oid
            self.repos[(repo_type, repo_id)] = repo
            return repo


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients use it
    server_version = "MedicraftTestHub/1.0"

    # -- plumbing ----------------------------------------------------------------------

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def log_message(self, format, *args):  # noqa: A002 - quiet; requests are recorded instead
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self, status: int, payload, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _dispatch(self):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self._read_body()  # always read it: keep-alive breaks otherwise
        self._status = 0
        handled = True
        try:
            injected = self.hub._take_failure(self.command, url.path)
            if injected is not None:
                raise HubError(injected, f"injected failure ({injected}) for {self.command} {url.path}")
            for method, pattern, handler_name in ROUTES:
                match = pattern.fullmatch(url.path)
                if match and self.command in method.split("|"):
                    args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    getattr(self, handler_name)(**args)
                    break
            else:
                raise Unhandled()
        except Unhandled as exc:
            handled = False
            self._json(501, {"error": f"test hub does not handle {self.command} {self.path} {exc}".strip()})
        except HubError as exc:
            message = exc.message.encode("ascii", "backslashreplace").decode()  # headers are latin-1
            headers = {"X-Error-Code": exc.error_code, "X-Error-Message": message} if exc.error_code else {}
            self._json(exc.status, {"error": exc.message}, headers)
        except Exception as exc:  # a server bug: answer 500 and keep it visible
            handled = False
            self._json(500, {"error": f"test hub crashed: {exc!r}"})
        record = RequestRecord(self.command, self.path, self._status, handled)
        with self.hub._lock:
            self.hub.requests.append(record)
            if not handled:
                self.hub.unhandled.append(record)

    # -- lookups -----------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        # Private repos are invisible without a token, as on the Hub.
        if repo is None or (repo.private and not self.headers.get("Authorization")):
            raise HubError(404 if repo is None else 401, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.endpoint}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def _json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"invalid JSON body: {exc}") from None

    @staticmethod
    def _type(plural: str) -> str:
        return plural[:-1]

    # -- repo management ---------------------------------------------------------------

    def handle_create_repo(self):
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise Unhandled(f"(repo type {repo_type!r})")
        repo_id = f"{body.get('organization') or self.hub.namespace}/{body['name']}"
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        with self.hub._lock:
            existing = self.hub.repos.get((repo_type, repo_id))
            if existing is not None:
                self._json(409, {"error": "You already created this repo", "url": self._repo_url(existing)})
                return
            repo = self.hub.create_repo(repo_type, repo_id, private)
        self._json(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def handle_delete_repo(self):
        body = self._json_body()
        key = (body.get("type") or "model", f"{body.get('organization') or self.hub.namespace}/{body['name']}")
        with self.hub._lock:
            if key not in self.hub.repos:
                raise HubError(404, f"Repository not found: {key[1]}", "RepoNotFound")
            del self.hub.repos[key]
        self._json(200, {})

    def handle_settings(self, type, repo_id):
        body = self._json_body()
        with self.hub._lock:
            repo = self._repo(self._type(type), repo_id)
            if "visibility" in body:
                repo.private = body["visibility"] != "public"
            if "private" in body:
                repo.private = bool(body["private"])
        self._json(200, {"private": repo.private})

    def handle_whoami(self):
        name = self.hub.namespace
        self._json(200, {"type": "user", "id": name, "name": name, "fullname": name, "avatarUrl": "", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def handle_validate_yaml(self):
        self._json(200, {"errors": [], "warnings": []})

    # -- write path --------------------------------------------------------------------

    def handle_preupload(self, type, repo_id, revision):
        repo = self._repo(self._type(type), repo_id)
        commit = self._commit(repo, revision)
        answers = []
        for file in self._json_body().get("files", []):
            sample = base64.b64decode(file.get("sample", ""))
            binary = file["path"].lower().endswith(LFS_SUFFIXES) or b"\0" in sample or file.get("size", 0) >= LFS_MIN_SIZE
            existing = commit.files.get(file["path"])
            answers.append({"path": file["path"], "uploadMode": "lfs" if binary else "regular",
                            "shouldIgnore": False, "oid": existing.git_oid if existing else None})
        self._json(200, {"files": answers, "commitOid": commit.oid})

    def handle_lfs_batch(self, repo_id, prefix=""):
        repo_type = {"": "model", "datasets/": "dataset", "spaces/": "space"}[prefix or ""]
        self._repo(repo_type, repo_id)
        body = self._json_body()
        if body.get("operation") != "upload":
            raise Unhandled(f"(LFS operation {body.get('operation')!r})")
        objects = []
        for obj in body.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.hub.lfs_objects:
                href = f"{self.hub.endpoint}/lfs-upload/{obj['oid']}/{obj['size']}"
                answer["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def handle_lfs_upload(self, oid, size):
        if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != int(size):
            raise HubError(400, f"LFS upload does not match oid {oid} / size {size}")
        with self.hub._lock:
            self.hub.lfs_objects[oid] = self.body
        self._send(200)

    def handle_commit(self, type, repo_id, revision):
        if self.query:
            raise Unhandled(f"(commit options {sorted(self.query)})")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self.hub._lock:
            repo = self._repo(self._type(type), repo_id)
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            head = repo.commits[repo.branches[revision]]
            parent = header.get("parentCommit")
            if parent and parent != head.oid:
                raise HubError(412, f"A commit has happened since {parent}. Please refresh and try again.")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"].strip("/")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise Unhandled(f"(file encoding {value.get('encoding')!r})")
                    files[path] = Blob(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    data = self.hub.lfs_objects.get(value["oid"])
                    if data is None:
                        raise HubError(400, f"LFS object {value['oid']} for {path} was never uploaded")
                    files[path] = Blob(data, value["oid"])
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"cannot delete missing file {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    for name in [name for name in files if name.startswith(path + "/")]:
                        del files[name]
                else:
                    raise Unhandled(f"(commit operation {key!r})")
            commit = self.hub._new_commit(repo, head.oid, header.get("summary", ""), header.get("description", ""), files)
            repo.branches[revision] = commit.oid
        self._json(200, {"success": True, "commitOid": commit.oid, "commitMessage": commit.title,
                         "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}", "pullRequestUrl": None})

    def handle_create_branch(self, type, repo_id, branch):
        body = self._json_body()
        with self.hub._lock:
            repo = self._repo(self._type(type), repo_id)
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._commit(repo, body.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        self._json(200, {})

    # -- read path ---------------------------------------------------------------------

    def handle_repo_info(self, type, repo_id, revision="main"):
        repo = self._repo(self._type(type), repo_id)
        commit = self._commit(repo, revision)
        siblings = [
            {"rfilename": path, "size": len(blob.data), "blobId": blob.git_oid,
             **({"lfs": {"sha256": blob.lfs_oid, "size": len(blob.data),
                         "pointerSize": len(lfs_pointer(blob.lfs_oid, len(blob.data)))}}
                if blob.lfs_oid else {})}
            for path, blob in sorted(commit.files.items())
        ]
        author = repo.repo_id.split("/")[0]
        self._json(200, {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                         "author": author, "sha": commit.oid, "private": repo.private, "disabled": False,
                         "gated": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                         "lastModified": commit.date, "createdAt": repo.created_at, "usedStorage": 0})

    def _entries(self, commit: Commit, base: str, recursive: bool) -> list[dict]:
        """Tree entries below `base` ('' = root), directories first, like the Hub."""
        prefix = base + "/" if base else ""
        dirs, files = {}, []
        for path, blob in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest) if recursive else min(2, len(rest))):
                dir_path = prefix + "/".join(rest[:depth])
                dirs.setdefault(dir_path, self._dir_entry(commit, dir_path))
            if recursive or len(rest) == 1:
                files.append(self._file_entry(path, blob))
        return list(dirs.values()) + files

    @staticmethod
    def _file_entry(path: str, blob: Blob) -> dict:
        entry = {"type": "file", "oid": blob.git_oid, "size": len(blob.data), "path": path}
        if blob.lfs_oid:
            entry["lfs"] = {"oid": blob.lfs_oid, "size": len(blob.data),
                            "pointerSize": len(lfs_pointer(blob.lfs_oid, len(blob.data)))}
        return entry

    @staticmethod
    def _dir_entry(commit: Commit, path: str) -> dict:
        listing = "".join(f"{name}{blob.git_oid}" for name, blob in sorted(commit.files.items()) if name.startswith(path + "/"))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": path}

    def _is_dir(self, commit: Commit, path: str) -> bool:
        return any(name.startswith(path + "/") for name in commit.files)

    def handle_tree(self, type, repo_id, revision, path=""):
        repo = self._repo(self._type(type), repo_id)
        commit = self._commit(repo, revision)
        path = path.strip("/")
        if path and not self._is_dir(commit, path):
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        self._json(200, self._entries(commit, path, recursive))

    def handle_paths_info(self, type, repo_id, revision):
        repo = self._repo(self._type(type), repo_id)
        commit = self._commit(repo, revision)
        form = parse_qs(self.body.decode())
        if not form and self.body.strip().startswith(b"{"):
            form = {"paths": self._json_body().get("paths", [])}
        entries = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._file_entry(path, commit.files[path]))
            elif self._is_dir(commit, path):
                entries.append(self._dir_entry(commit, path))
        self._json(200, entries)

    def handle_refs(self, type, repo_id):
        repo = self._repo(self._type(type), repo_id)
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in repo.branches.items()]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def handle_commits(self, type, repo_id, revision):
        repo = self._repo(self._type(type), repo_id)
        commit, history = self._commit(repo, revision), []
        while commit is not None:
            history.append({"id": commit.oid, "title": commit.title, "message": commit.message, "date": commit.date,
                            "authors": [{"user": self.hub.namespace}]})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(200, history)

    def handle_resolve(self, repo_id, revision, path, prefix=""):
        repo_type = {"": "model", "datasets/": "dataset", "spaces/": "space"}[prefix or ""]
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"ETag": f'"{blob.etag}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        data, status = blob.data, 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or match.groups() == ("", ""):
                raise Unhandled(f"(Range {range_header!r})")
            first, last = match.groups()
            size = len(data)
            start, end = (size - int(last), size - 1) if first == "" else (int(first), min(int(last or size - 1), size - 1))
            start = max(start, 0)
            if start >= size:
                self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
                return
            data, status = data[start:end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, data, headers, content_type="application/octet-stream")


_TYPES = r"(?P<type>models|datasets|spaces)"
_REPO = rf"(?P<repo_id>{NAME_RE}/{NAME_RE})"
_REV = r"(?P<revision>[^/]+)"
_PREFIX = r"(?P<prefix>datasets/|spaces/)?"
ROUTES = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("POST", r"/api/repos/create", "handle_create_repo"),
        ("DELETE", r"/api/repos/delete", "handle_delete_repo"),
        ("GET", r"/api/whoami-v2", "handle_whoami"),
        ("POST", r"/api/validate-yaml", "handle_validate_yaml"),
        ("PUT", rf"/api/{_TYPES}/{_REPO}/settings", "handle_settings"),
        ("POST", rf"/api/{_TYPES}/{_REPO}/preupload/{_REV}", "handle_preupload"),
        ("POST", rf"/api/{_TYPES}/{_REPO}/commit/{_REV}", "handle_commit"),
        ("POST", rf"/api/{_TYPES}/{_REPO}/branch/(?P<branch>[^/]+)", "handle_create_branch"),
        ("GET", rf"/api/{_TYPES}/{_REPO}", "handle_repo_info"),
        ("GET", rf"/api/{_TYPES}/{_REPO}/revision/{_REV}", "handle_repo_info"),
        ("GET", rf"/api/{_TYPES}/{_REPO}/tree/{_REV}(?:/(?P<path>.+))?", "handle_tree"),
        ("POST", rf"/api/{_TYPES}/{_REPO}/paths-info/{_REV}", "handle_paths_info"),
        ("GET", rf"/api/{_TYPES}/{_REPO}/refs", "handle_refs"),
        ("GET", rf"/api/{_TYPES}/{_REPO}/commits/{_REV}", "handle_commits"),
        ("POST", rf"/{_PREFIX}(?P<repo_id>{NAME_RE}/{NAME_RE})\.git/info/lfs/objects/batch", "handle_lfs_batch"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)", "handle_lfs_upload"),
        ("GET|HEAD", rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)", "handle_resolve"),
    ]
]
