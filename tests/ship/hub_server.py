"""A minimal Hugging Face Hub on 127.0.0.1 for tests: the endpoints huggingface_hub calls to
create a repo and a branch, upload (model-card check, preupload, LFS batch + PUT, ndjson commit) and download
(repo info, tree, resolve). State lives in memory; every request is logged."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

#: Files the Hub stores through LFS (by suffix), as its default .gitattributes does.
LFS_SUFFIXES = (".safetensors", ".png", ".bin", ".pt")


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    """Repos: ``{repo_id: {"private", "branches": {name: sha}, "commits": {sha: {path: bytes}}}}``."""

    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, authorization)
        self.commit_messages: list[str] = []
        self.cards: list[str] = []  # README.md contents sent to /api/validate-yaml
        self.read_only = False  # refuse repo creation (403), as for a token without write access
        self.lock = threading.Lock()

    def files(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]]:
        repo = self.repos[repo_id]
        sha = repo["branches"].get(revision, revision)
        return sha, repo["commits"][sha]


class Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, payload=None, *, body: bytes | None = None, headers: dict | None = None, head: bool = False
    ):
        data = body if body is not None else json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, message: str, head: bool = False):
        self._send(status, {"error": message}, headers={"X-Error-Message": message}, head=head)

    def _route(self, method: str):
        url = urlparse(self.path)
        path = unquote(url.path)
        self.hub.log.append((method, path, self.headers.get("Authorization")))
        endpoint = f"http://{self.headers['Host']}"
        with self.hub.lock:
            for pattern, handler in ROUTES.get(method, []):
                match = re.fullmatch(pattern, path)
                if match:
                    return handler(self, endpoint, *match.groups())
        return self._error(404, f"no route {method} {path}", head=method == "HEAD")

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    # -- endpoints ---------------------------------------------------------------------------
    def create_repo(self, endpoint):
        body = json.loads(self._body())
        if self.hub.read_only:
            return self._error(403, "You don't have the rights to create a model under this namespace")
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if repo_id in self.hub.repos:
            return self._error(409, "You already created this model repo")
        empty = hashlib.sha1(repo_id.encode()).hexdigest()
        self.hub.repos[repo_id] = {
            "private": body.get("visibility") == "private",
            "branches": {"main": empty},
            "commits": {empty: {}},
        }
        return self._send(200, {"url": f"{endpoint}/{repo_id}", "name": repo_id})

    def validate_yaml(self, endpoint):
        self.hub.cards.append(json.loads(self._body())["content"])
        return self._send(200, {"errors": [], "warnings": []})

    def create_branch(self, endpoint, repo_id, branch):
        self._body()
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found")
        if branch in repo["branches"]:
            return self._error(409, "Reference already exists")
        repo["branches"][branch] = repo["branches"]["main"]
        return self._send(200, {})

    def preupload(self, endpoint, repo_id, revision):
        body = json.loads(self._body())
        return self._send(
            200,
            {
                "files": [
                    {
                        "path": f["path"],
                        "shouldIgnore": False,
                        "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                    }
                    for f in body["files"]
                ]
            },
        )

    def lfs_batch(self, endpoint, repo_id):
        body = json.loads(self._body())
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:
                entry["actions"] = {"upload": {"href": f"{endpoint}/_lfs/{obj['oid']}"}}
            objects.append(entry)
        return self._send(200, {"transfer": "basic", "objects": objects})

    def lfs_put(self, endpoint, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "sha256 mismatch")
        self.hub.lfs[oid] = data
        return self._send(200, {})

    def commit(self, endpoint, repo_id, revision):
        repo = self.hub.repos.get(repo_id)
        if repo is None or revision not in repo["branches"]:
            return self._error(404, "Repository or revision not found")
        files = dict(repo["commits"][repo["branches"][revision]])
        summary = ""
        for line in self._body().decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value["summary"]
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs:
                    return self._error(422, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = self.hub.lfs[value["oid"]]
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
        sha = hashlib.sha1(
            json.dumps(sorted((k, git_blob_sha(v)) for k, v in files.items())).encode()
            + summary.encode()
            + str(len(repo["commits"])).encode()
        ).hexdigest()
        repo["commits"][sha] = files
        repo["branches"][revision] = sha
        self.hub.commit_messages.append(summary)
        return self._send(
            200,
            {
                "commitUrl": f"{endpoint}/{repo_id}/commit/{sha}",
                "commitOid": sha,
                "commitMessage": summary,
                "success": True,
                "pullRequestUrl": None,
            },
        )

    def info(self, endpoint, repo_id, revision=None):
        if repo_id not in self.hub.repos:
            return self._error(404, "Repository not found")
        sha, files = self.hub.files(repo_id, revision or "main")
        return self._send(
            200,
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": self.hub.repos[repo_id]["private"],
                "siblings": [{"rfilename": name} for name in sorted(files)],
            },
        )

    def tree(self, endpoint, repo_id, revision, _subpath=None):
        if repo_id not in self.hub.repos:
            return self._error(404, "Repository not found")
        _sha, files = self.hub.files(repo_id, revision)
        entries = []
        for name, data in sorted(files.items()):
            entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha(data)}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return self._send(200, entries)

    def resolve(self, endpoint, repo_id, revision, name, head=False):
        if repo_id not in self.hub.repos:
            return self._error(404, "Repository not found", head=head)
        sha, files = self.hub.files(repo_id, revision)
        if name not in files:
            return self._error(404, "Entry not found", head=head)
        data = files[name]
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_sha(data)
        return self._send(200, body=data, head=head, headers={"X-Repo-Commit": sha, "ETag": f'"{etag}"'})

    def resolve_head(self, endpoint, repo_id, revision, name):
        return self.resolve(endpoint, repo_id, revision, name, head=True)


REPO = r"([\w.-]+/[\w.-]+)"
ROUTES = {
    "POST": [
        (r"/api/repos/create", Handler.create_repo),
        (r"/api/validate-yaml", Handler.validate_yaml),
        (rf"/api/models/{REPO}/branch/([^/]+)", Handler.create_branch),
        (rf"/api/models/{REPO}/preupload/([^/]+)", Handler.preupload),
        (rf"/{REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
        (rf"/api/models/{REPO}/commit/([^/]+)", Handler.commit),
    ],
    "PUT": [(r"/_lfs/([0-9a-f]{64})", Handler.lfs_put)],
    "GET": [
        (rf"/api/models/{REPO}/revision/([^/]+)", Handler.info),
        (rf"/api/models/{REPO}", Handler.info),
        (rf"/api/models/{REPO}/tree/([^/]+)(/.*)?", Handler.tree),
        (rf"/{REPO}/resolve/([^/]+)/(.+)", Handler.resolve),
    ],
    "HEAD": [(rf"/{REPO}/resolve/([^/]+)/(.+)", Handler.resolve_head)],
}


class HubServer:
    """``with HubServer() as hub: …`` — ``hub.endpoint`` is its URL, ``hub.state`` its :class:`Hub`."""

    def __enter__(self) -> HubServer:
        self.state = Hub()
        handler = type("BoundHandler", (Handler,), {"hub": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
