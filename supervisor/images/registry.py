"""A client of the OCI distribution API (what Docker registries speak).

HTTP is httpx's: a maintained client whose AsyncClient runs on trio (through
anyio), streams bodies, and handles HTTP/1.1 keep-alive and TLS; nothing of
HTTP is written here. What is here is the distribution protocol: the auth
challenge (Basic, or Bearer with a token from the realm the registry names),
manifest negotiation (OCI and Docker schema 2, manifests and indexes), blobs
fetched to a partial file that a later pull resumes with a Range request, and
every digest checked before anything is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httpx
import trio

from supervisor.errors import RegistryError

# httpcore reads a response 64 KiB at a time, and each read is a trip through
# h11, httpcore, anyio and trio in the daemon's thread, which the unpacking
# threads then wait on for the GIL: at 256 KiB a one-layer 211 MB pull took
# 0.89 s here instead of 1.17 s. A class attribute of httpcore's public
# connection class; the daemon has no other HTTP client.
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 256 * 1024

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
DEFAULT_REGISTRY = "registry-1.docker.io"
# What users call Docker Hub in a reference; all mean DEFAULT_REGISTRY.
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


class Reference:
    """registry/repository[:tag][@digest], Docker's defaults filled in."""

    def __init__(self, text: str) -> None:
        name, _, digest = text.partition("@")
        first, slash, rest = name.partition("/")
        if slash and first in HUB_NAMES:  # Docker Hub by any of its names
            self.registry, path = DEFAULT_REGISTRY, rest
            if "/" not in path:
                path = "library/" + path
        elif slash and ("." in first or ":" in first or first == "localhost"):
            self.registry, path = first, rest
        else:
            self.registry, path = DEFAULT_REGISTRY, name
            if "/" not in path:
                path = "library/" + path
        repo, colon, tag = path.rpartition(":")
        if not colon or "/" in tag:
            repo, tag = path, "latest"
        if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repo):
            raise RegistryError(f"invalid repository name {repo!r}")
        self.repository, self.tag, self.digest = repo, tag, digest

    @property
    def local_name(self) -> str:
        """How the image is tagged in the local store."""
        if self.registry == DEFAULT_REGISTRY:
            repo = self.repository.removeprefix("library/")
            return f"{repo}:{self.tag}"
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def local_repo(self) -> str:
        """The local name without its tag: what `@digest` is added to."""
        return self.local_name.rpartition(":")[0]

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


def is_local(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host in ("localhost", "127.0.0.1", "::1", "[::1]")


class Client:
    """One registry. `credentials(registry)` returns (user, password) or None."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: Callable[[str], tuple[str, str] | None] = lambda r: None,
    ) -> None:
        scheme = "http" if insecure or is_local(registry) else "https"
        self.registry = registry
        self.base = f"{scheme}://{registry}"
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True
        )
        self.credentials = credentials
        self.tokens: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- auth ---------------------------------------------------------------------------

    async def _auth_header(self, challenge: str, scope: str) -> dict[str, str]:
        creds = self.credentials(self.registry)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if creds is None:
                raise RegistryError(f"{self.registry} needs a login (corral login {self.registry})")
            raw = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.registry}: unsupported auth scheme {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        # The scope the registry asks for (a HEAD wants pull, the upload after it
        # pull,push): a token is cached under what it was granted for.
        scope = fields.get("scope", scope)
        if scope in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[scope]}"}
        query = {"service": fields.get("service", ""), "scope": scope}
        auth = httpx.BasicAuth(*creds) if creds else None
        resp = await self.http.get(fields["realm"], params=query, auth=auth)
        if resp.status_code != 200:
            raise RegistryError(f"token from {fields['realm']}: HTTP {resp.status_code}")
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token from {fields['realm']}: no token in the answer")
        self.tokens[scope] = token
        return {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, *, scope: str, headers=None, **kw):
        headers = dict(headers or {})
        url = path if path.startswith("http") else self.base + path
        resp = await self.http.request(method, url, headers=headers, **kw)
        if resp.status_code == 401 and "www-authenticate" in resp.headers:
            headers.update(await self._auth_header(resp.headers["www-authenticate"], scope))
            resp = await self.http.request(method, url, headers=headers, **kw)
        if resp.status_code in (401, 403):
            self._refused(resp, scope)
        return resp

    def _refused(self, resp: httpx.Response, scope: str) -> None:
        """401/403 after authenticating: say what was refused and what to do."""
        try:
            errors = resp.json().get("errors") or [{}]
            detail = errors[0].get("message", "")
        except (ValueError, AttributeError):
            detail = ""
        why = f"HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if self.credentials(self.registry) is None:
            hint = f"log in with `corral login {self.registry}`"
        else:
            hint = f"the credentials saved for {self.registry} do not allow it"
        raise RegistryError(f"{self.registry} refused {scope} ({why}); {hint}")

    # -- manifests -----------------------------------------------------------------------

    async def manifest(
        self, repo: str, ref: str, platform: str = "linux/amd64"
    ) -> tuple[bytes, str, str]:
        """(body, media type, digest) of the manifest for `ref`; an index is
        resolved to the entry for `platform`, and the digest is then the index's:
        the one a reference pins (`name@digest`), which Docker shows."""
        scope = f"repository:{repo}:pull"
        resp = await self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", scope=scope, headers={"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            raise RegistryError(f"manifest for {repo}:{ref} not found")
        if resp.status_code != 200:
            raise RegistryError(f"manifest for {repo}:{ref}: HTTP {resp.status_code}")
        body = resp.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if ref.startswith("sha256:") and digest != ref:
            raise RegistryError(f"manifest digest mismatch: asked {ref}, got {digest}")
        header = resp.headers.get("docker-content-digest")
        if header and header != digest:
            raise RegistryError(f"manifest digest mismatch: header {header}, content {digest}")
        mtype = resp.headers.get("content-type", "").split(";")[0] or json.loads(body).get(
            "mediaType", ""
        )
        if mtype in INDEX_TYPES:
            os_, _, arch = platform.partition("/")
            arch, _, variant = arch.partition("/")
            for m in json.loads(body).get("manifests", []):
                p = m.get("platform", {})
                if (
                    p.get("os") == os_
                    and p.get("architecture") == arch
                    and (not variant or p.get("variant") == variant)
                ):
                    body, mtype, _ = await self.manifest(repo, m["digest"], platform)
                    return body, mtype, digest
            raise RegistryError(f"{repo}:{ref} has no image for {platform}")
        if mtype not in MANIFEST_TYPES:
            raise RegistryError(f"{repo}:{ref}: unsupported manifest type {mtype!r}")
        return body, mtype, digest

    # -- blobs ----------------------------------------------------------------------------

    async def fetch_blob(
        self,
        repo: str,
        digest: str,
        dest: Path,
        progress: Callable[[int, int], None] = lambda d, t: None,
        tee: Callable[[bytes], Awaitable[object]] | None = None,
    ) -> None:
        """Download to `dest`, resuming a partial `dest.partial` with a Range
        request; the digest is checked before `dest` appears. `tee` is given
        every byte of the blob as well, in order (a resumed part first)."""
        partial = dest.with_name(dest.name + ".partial")
        scope = f"repository:{repo}:pull"
        auth = await self._cached_auth(scope)
        for attempt in (0, 1):
            have = partial.stat().st_size if partial.exists() else 0
            headers = {**auth, **({"Range": f"bytes={have}-"} if have else {})}
            async with self.http.stream(
                "GET", f"{self.base}/v2/{repo}/blobs/{digest}", headers=headers
            ) as r:
                if r.status_code == 401 and attempt == 0:
                    await r.aread()
                    auth = await self._auth_header(r.headers.get("www-authenticate", ""), scope)
                    continue
                if r.status_code in (401, 403):
                    await r.aread()
                    self._refused(r, scope)
                await self._consume(r, partial, have, digest, progress, tee)
                break
        os.rename(partial, dest)

    async def _cached_auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"} if scope in self.tokens else {}

    async def _consume(self, r, partial: Path, have: int, digest: str, progress, tee) -> None:
        if r.status_code == 200 and have:
            have = 0  # the server ignored the Range: start over
            partial.unlink(missing_ok=True)
        elif r.status_code not in (200, 206):
            raise RegistryError(f"blob {digest}: HTTP {r.status_code}")
        h = hashlib.sha256()
        total = have + int(r.headers.get("content-length", 0) or 0)
        with open(partial, "a+b") as f:
            if have:  # what an earlier pull fetched: hashed, and teed, first
                f.seek(0)
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    if tee is not None:
                        await tee(chunk)
            # As they come (64 KiB): asking httpx for bigger chunks made it copy
            # them together, a third of the download's time here.
            async for chunk in r.aiter_bytes():
                f.write(chunk)
                h.update(chunk)
                if tee is not None:
                    await tee(chunk)
                have += len(chunk)
                progress(have, total)
        if "sha256:" + h.hexdigest() != digest:
            partial.unlink(missing_ok=True)
            raise RegistryError(f"digest mismatch: blob does not match {digest} (refused)")

    async def blob_exists(self, repo: str, digest: str) -> bool:
        r = await self.request(
            "HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:push,pull"
        )
        return r.status_code == 200

    async def upload_blob(self, repo: str, digest: str, path: Path) -> None:
        scope = f"repository:{repo}:push,pull"
        r = await self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        if r.status_code not in (202, 201):
            raise RegistryError(f"starting an upload to {repo}: HTTP {r.status_code}")
        location = r.headers["location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        data = await trio.to_thread.run_sync(path.read_bytes)  # a layer: not on the loop
        r = await self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            scope=scope,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if r.status_code != 201:
            raise RegistryError(f"uploading {digest} to {repo}: HTTP {r.status_code}")

    async def put_manifest(self, repo: str, tag: str, body: bytes, media_type: str) -> None:
        r = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            scope=f"repository:{repo}:push,pull",
            content=body,
            headers={"Content-Type": media_type},
        )
        if r.status_code not in (200, 201):
            raise RegistryError(
                f"pushing the manifest of {repo}:{tag}: HTTP {r.status_code} {r.text[:200]}"
            )
