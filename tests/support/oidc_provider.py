"""A real upstream authorization server for end-to-end tests, and a "browser" for it.

The gateway's e2e tests need an upstream that behaves like a real OAuth2/OIDC
server, not like a mock written by the gateway's authors. This module starts
panva's ``oidc-provider`` (npm, pinned in ``oidc-provider/package.json``) on
127.0.0.1 and walks through its own login and consent pages the way a browser
would: following redirects one by one, parsing the HTML forms and submitting
them with their hidden fields and cookies.

The dev login page accepts any login and password; the login becomes ``sub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import yarl

NODE_DIR: Path = Path(__file__).resolve().parent / "oidc-provider"
"""Folder of the Node project (package.json, package-lock.json, server.mjs)."""

SERVER_JS: Path = NODE_DIR / "server.mjs"

READY_TIMEOUT = 20.0
"""Seconds to wait for the ``READY <issuer>`` line; node start-up is ~1 s."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def ensure_node_modules() -> None:
    """Run ``npm ci`` in :data:`NODE_DIR` unless oidc-provider is installed.

    Lets the e2e tests run on a fresh clone; CI may run ``npm ci`` itself first.
    ``npm ci`` installs exactly what package-lock.json pins.
    """
    installed = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
    if installed.is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH: Node.js 20+ is needed for the e2e upstream")
    # On a fresh clone every xdist worker gets here at once, and two `npm ci` in one folder remove
    # each other's files (ENOTEMPTY): one installs under an exclusive lock, the others wait for it.
    with open(NODE_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.is_file():
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class OidcUpstream:
    """A running oidc-provider process and its discovered endpoints."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    metadata: dict[str, Any]
    """The whole ``/.well-known/openid-configuration`` document."""
    process: asyncio.subprocess.Process | subprocess.Popen[bytes]
    """An asyncio child (own provider) or a Popen (shared, see :class:`SharedOidcProviders`)."""
    stderr_lines: list[str] = field(default_factory=list)
    """The provider's stderr so far (warnings, server errors): for debugging."""
    _drain: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata["userinfo_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    async def stop(self) -> None:
        """SIGTERM the provider and wait for it (SIGKILL after 5 s)."""
        if isinstance(self.process, subprocess.Popen):
            raise RuntimeError("a shared provider is stopped by SharedOidcProviders.close at the end of the session")
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for task in self._drain:
            task.cancel()
        await asyncio.gather(*self._drain, return_exceptions=True)


async def _collect(stream: asyncio.StreamReader, sink: list[str]) -> None:
    """Keep reading a pipe so the child never blocks on a full pipe buffer."""
    while line := await stream.readline():
        sink.append(line.decode(errors="replace").rstrip("\n"))


async def start_oidc_provider(
    clients: Sequence[dict[str, Any]],
    *,
    access_token_ttl: int | None = None,
    pkce_required: bool = False,
    rotate_refresh_token: bool = False,
    extra_scopes: Sequence[str] = (),
    port: int = 0,
) -> OidcUpstream:
    """Start ``node server.mjs`` and return once it is ready and discovered.

    ``clients`` are oidc-provider client metadata: ``client_id``,
    ``client_secret``, ``redirect_uris``, and optionally
    ``token_endpoint_auth_method`` (default client_secret_basic) and
    ``grant_types`` (default authorization_code + refresh_token; a client with
    refresh_token always gets a refresh token, no offline_access needed).
    ``extra_scopes`` are non-OIDC scope names the provider should accept
    (unknown scopes are silently dropped by oidc-provider).
    The caller must ``await upstream.stop()``; see :func:`running_oidc_provider`.
    """
    await asyncio.to_thread(ensure_node_modules)
    config: dict[str, Any] = {
        "port": port,
        "clients": list(clients),
        "pkce_required": pkce_required,
        "rotate_refresh_token": rotate_refresh_token,
        "extra_scopes": list(extra_scopes),
        "exit_on_stdin_close": True,
    }
    if access_token_ttl is not None:
        config["access_token_ttl"] = access_token_ttl
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found on PATH: Node.js 20+ is needed for the e2e upstream")
    # Once in many CI runs a node process stalled before printing READY (its stderr showed only
    # the Node-version warning): a startup hiccup of the test harness, not of the gateway. One
    # fresh process is tried before giving up, so such a stall doesn't fail an unrelated test.
    try:
        return await _start_process(node, config)
    except _StartupTimeout:
        return await _start_process(node, config)


class _StartupTimeout(RuntimeError):
    """The provider printed no READY line in time."""


async def _start_process(node: str, config: dict[str, Any]) -> OidcUpstream:
    process = await asyncio.create_subprocess_exec(
        node,
        str(SERVER_JS),
        cwd=NODE_DIR,
        env={**os.environ, "OIDC_CONFIG": json.dumps(config)},
        # Never written to: if this Python process dies, the pipe closes and
        # the server exits by itself instead of outliving the test run.
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr_lines: list[str] = []
    stdout_lines: list[str] = []
    drain = [asyncio.create_task(_collect(process.stderr, stderr_lines))]

    async def read_ready() -> str:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith("READY "):
                return text.removeprefix("READY ")
            stdout_lines.append(text)
        raise EOFError("provider exited before printing READY")

    try:
        issuer = await asyncio.wait_for(read_ready(), READY_TIMEOUT)
    except (TimeoutError, EOFError) as exc:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await asyncio.gather(*drain, return_exceptions=True)
        raise (_StartupTimeout if isinstance(exc, TimeoutError) else RuntimeError)(
            f"oidc-provider did not start ({exc!r}, exit code {process.returncode}).\n"
            f"stdout:\n" + "\n".join(stdout_lines) + "\nstderr:\n" + "\n".join(stderr_lines)
        ) from exc
    drain.append(asyncio.create_task(_collect(process.stdout, stdout_lines)))

    upstream = OidcUpstream(
        issuer=issuer,
        authorization_endpoint="",
        token_endpoint="",
        metadata={},
        process=process,
        stderr_lines=stderr_lines,
        _drain=drain,
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{issuer}/.well-known/openid-configuration") as resp:
                resp.raise_for_status()
                metadata: dict[str, Any] = await resp.json()
    except BaseException:
        await upstream.stop()
        raise
    upstream.metadata = metadata
    upstream.authorization_endpoint = str(metadata["authorization_endpoint"])
    upstream.token_endpoint = str(metadata["token_endpoint"])
    return upstream


@contextlib.asynccontextmanager
async def running_oidc_provider(
    clients: Sequence[dict[str, Any]],
    *,
    access_token_ttl: int | None = None,
    pkce_required: bool = False,
    rotate_refresh_token: bool = False,
    extra_scopes: Sequence[str] = (),
    port: int = 0,
) -> AsyncIterator[OidcUpstream]:
    """:func:`start_oidc_provider` as an ``async with`` that always stops it."""
    upstream = await start_oidc_provider(
        clients,
        access_token_ttl=access_token_ttl,
        pkce_required=pkce_required,
        rotate_refresh_token=rotate_refresh_token,
        extra_scopes=extra_scopes,
        port=port,
    )
    try:
        yield upstream
    finally:
        await upstream.stop()


@dataclass
class _Form:
    action: str
    method: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, type, value) of each named input, in page order."""


class _PageParser(HTMLParser):
    """Collects a page's forms, links and visible text (stdlib only)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.text: list[str] = []
        self._form: _Form | None = None
        self._href: str | None = None
        self._link_text: list[str] = []
        self._skip = 0  # inside <style>/<script>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            self._form = _Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag in ("input", "button", "select", "textarea") and self._form is not None:
            # Buttons only count when named: like a browser, submit the clicked one.
            if "name" in a and (tag != "button" or a.get("type", "submit") == "submit"):
                self._form.fields.append((a["name"], a.get("type", tag).lower(), a.get("value", "")))
        elif tag == "a" and "href" in a:
            self._href, self._link_text = a["href"], []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._form = None
        elif tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._link_text).split())))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._href is not None:
            self._link_text.append(data)

    def page_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _resolve(base: yarl.URL, location: str) -> yarl.URL:
    """Resolve a (possibly relative) Location against the URL it came from."""
    target = yarl.URL(location, encoded=True)
    return target if target.is_absolute() else base.join(target)


def _fill(form: _Form, login: str, password: str) -> dict[str, str]:
    """The form's fields as a browser submits them, with the user's typing."""
    data: dict[str, str] = {}
    for name, kind, value in form.fields:
        if kind == "password":
            value = password
        elif kind in ("text", "email") and name in ("login", "username", "email"):
            value = login
        elif kind in ("checkbox", "radio"):
            continue  # the dev interactions have none; unchecked boxes aren't sent
        data.setdefault(name, value)
    return data


async def login_and_consent(
    session: aiohttp.ClientSession,
    authorize_url: str | yarl.URL,
    *,
    stop_at_prefix: str,
    login: str = "alice",
    password: str = "secret",
    deny: bool = False,
    max_steps: int = 25,
) -> yarl.URL:
    """Act as the user's browser from ``authorize_url`` until ``stop_at_prefix``.

    Follows every redirect by hand (``allow_redirects=False``), so it can start
    at the gateway's /authorize and stop at the gateway's callback (or the
    platform's redirect URI) *without requesting it*: the returned URL carries
    ``code``/``state`` (or ``error``) for the test to inspect or to deliver.

    On the provider's login page it types ``login``/``password``; on its
    consent page it clicks Continue. With ``deny=True`` it clicks the page's
    "[ Cancel ]" link on the first interaction page (login, or consent when the
    provider already has a session), so the provider redirects back with
    ``error=access_denied`` and the original ``state``.

    ``session`` must keep cookies for IP hosts: ``aiohttp.CookieJar(unsafe=True)``.
    Raises AssertionError with the page's text when the flow goes anywhere else.
    """
    url = yarl.URL(str(authorize_url), encoded=True)
    method, data = "GET", None
    for _ in range(max_steps):
        async with session.request(method, url, data=data, allow_redirects=False) as resp:
            if resp.status in _REDIRECTS:
                location = resp.headers.get("Location")
                if not location:
                    raise AssertionError(f"{resp.status} without Location from {url}")
                target = _resolve(url, location)
                if str(target).startswith(stop_at_prefix):
                    return target
                if resp.status not in (307, 308):
                    method, data = "GET", None
                url = target
                continue
            body = await resp.text()
            status = resp.status

        page = _PageParser()
        page.feed(body)
        page.close()
        where = f"{method} {url} -> {status}: {page.page_text()[:2000]}"
        if status != 200:
            raise AssertionError(f"login_and_consent got lost at {where}")

        if deny:
            cancel = [href for href, text in page.links if "/abort" in href or "cancel" in text.lower()]
            if not cancel:
                raise AssertionError(f"deny=True but no Cancel link at {where}")
            method, data, url = "GET", None, _resolve(url, cancel[0])
            continue

        forms = [f for f in page.forms if f.method == "post"] or page.forms
        if not forms:
            raise AssertionError(f"login_and_consent found no form at {where}")
        form = forms[0]
        method = form.method.upper()
        url = _resolve(url, form.action) if form.action else url
        filled = _fill(form, login, password)
        if method == "GET":
            url, data = url.with_query(filled), None
        else:
            data = filled
    raise AssertionError(f"login_and_consent: no redirect to {stop_at_prefix!r} after {max_steps} steps (at {url})")


class SharedOidcProviders:
    """One oidc-provider process per distinct configuration, kept for the whole test session.

    Starting node costs 0.4-1.3 s; 137 tests used to pay it each. A process started here is shared
    by every test asking for the same options. Tests stay isolated because each one brings its own
    browser (own provider session, own grant) and its own gateway port: the clients are registered
    with ``application_type: native``, for which oidc-provider accepts a loopback redirect URI on any
    port (RFC 8252 §7.3), so the gateway's port need not be known when the provider starts.

    The processes are plain :class:`subprocess.Popen` drained by threads, so they belong to no event
    loop: each test's loop can use them. Call :meth:`close` at the end of the session.
    """

    def __init__(self) -> None:
        self._running: dict[str, OidcUpstream] = {}
        self._lock = threading.Lock()

    def get(self, clients: Sequence[dict[str, Any]], **options: Any) -> OidcUpstream:
        """The provider for ``clients`` and ``options`` (those of :func:`start_oidc_provider`)."""
        key = json.dumps({"clients": list(clients), **options}, sort_keys=True)
        with self._lock:
            if key not in self._running:
                self._running[key] = _start_shared(clients, **options)
            return self._running[key]

    def close(self) -> None:
        with self._lock:
            for upstream in self._running.values():
                process = upstream.process
                assert isinstance(process, subprocess.Popen)
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                for pump in _PUMPS.pop(process.pid, []):
                    pump.join(5)  # the pipes hit EOF once node has exited
                for pipe in (process.stdin, process.stdout, process.stderr):
                    if pipe is not None:
                        pipe.close()
            self._running.clear()


_PUMPS: dict[int, list[threading.Thread]] = {}
"""The threads draining each shared provider's pipes, by pid: joined before the pipes close."""


def _start_shared(clients: Sequence[dict[str, Any]], **options: Any) -> OidcUpstream:
    """Start a provider synchronously (see :class:`SharedOidcProviders`); one retry on a stall."""
    ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found on PATH: Node.js 20+ is needed for the e2e upstream")
    config: dict[str, Any] = {"port": 0, "clients": list(clients), "exit_on_stdin_close": True}
    config.update({k: (list(v) if k == "extra_scopes" else v) for k, v in options.items() if v is not None})
    last: Exception | None = None
    for _attempt in range(2):
        process = subprocess.Popen(
            [node, str(SERVER_JS)],
            cwd=NODE_DIR,
            env={**os.environ, "OIDC_CONFIG": json.dumps(config)},
            stdin=subprocess.PIPE,  # never written to: the server exits when this process dies
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        stderr_lines: list[str] = []
        stdout_lines: list[str] = []
        ready: queue.Queue[str | None] = queue.Queue()

        def pump(stream: Any, sink: list[str], announce: bool, ready: queue.Queue[str | None] = ready) -> None:
            for raw in iter(stream.readline, b""):
                text = raw.decode(errors="replace").rstrip("\n")
                if announce and text.startswith("READY "):
                    ready.put(text.removeprefix("READY "))
                    announce = False
                else:
                    sink.append(text)
            if announce:
                ready.put(None)

        pumps = [
            threading.Thread(target=pump, args=(process.stderr, stderr_lines, False), daemon=True),
            threading.Thread(target=pump, args=(process.stdout, stdout_lines, True), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        _PUMPS[process.pid] = pumps
        try:
            issuer = ready.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            issuer = None
        if issuer is None:
            process.kill()
            process.wait()
            for thread in _PUMPS.pop(process.pid):
                thread.join(5)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            last = RuntimeError(
                f"oidc-provider did not start (exit code {process.returncode}).\nstdout:\n"
                + "\n".join(stdout_lines) + "\nstderr:\n" + "\n".join(stderr_lines)
            )
            continue
        with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=10) as resp:
            metadata: dict[str, Any] = json.load(resp)
        return OidcUpstream(
            issuer=issuer,
            authorization_endpoint=str(metadata["authorization_endpoint"]),
            token_endpoint=str(metadata["token_endpoint"]),
            metadata=metadata,
            process=process,
            stderr_lines=stderr_lines,
        )
    assert last is not None
    raise last
