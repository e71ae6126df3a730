"""Polite, bounded HTTP GETs: allow-list, robots.txt, per-host spacing across processes, retries.

Why a file lock per host: Snakemake runs each location's scrape as its own process, and every
location's photos come from the same image host. A ``fcntl`` lock on ``<lock_dir>/<host>.lock``
makes requests to a host strictly one at a time across all jobs on the machine, and the file
holds the earliest time the next request may start (the configured delay with jitter, a backoff,
or a server's Retry-After), so every job honours a pause that any job was asked for.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import logging
import os
import random
import re
import signal
import threading
import time
import urllib.robotparser
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .defaults import MAX_PAGE_BYTES, MAX_REDIRECTS, resolve

log = logging.getLogger("vacancy.sources.scrape")

REDIRECTS = {301, 302, 303, 307, 308}
#: Statuses worth another attempt after a backoff (429/503 honour Retry-After).
RETRY_STATUSES = {429, 500, 502, 503, 504}
#: Errors during connect or transfer that are worth another attempt.
TRANSIENT = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


class FetchError(Exception):
    """A URL could not be fetched; ``reason`` says why in words fit for the log.

    ``transient``: the cause may pass (a timeout, a broken transfer, a 5xx or 429 after every
    retry, a robots.txt that could not be read), so a later run should ask again; the location
    is then not recorded as complete. Otherwise the answer is the site's (a 404, a body too
    large, a host or path we must not fetch) and asking again would get the same.
    """

    def __init__(self, url: str, reason: str, status: int | None = None, transient: bool = False):
        super().__init__(f"{reason}: {url}")
        self.url, self.reason, self.status, self.transient = url, reason, status, transient


class NotAllowed(FetchError):
    """Never requested: host outside allowed_hosts, not http(s), or disallowed by robots.txt."""


class Blocked(FetchError):
    """The server refuses us repeatedly (403s in a row): the location must stop."""


class Failing(Blocked):
    """Requests keep failing for reasons that may pass (``max_failing`` in a row): the location
    stops for now, rather than spend ``timeout_s`` per attempt on every photo of a host that is
    down, overloaded or trickling."""


class _Deadline(Exception):
    """The response did not finish within timeout_s."""


class _TooLarge(Exception):
    """The response is larger than max_bytes."""


#: Characters no URL of the site has, and on which URL parsers disagree about the host: Python's
#: ``urlsplit`` reads ``http://evil\@allowed/`` as host "allowed", urllib3 (which requests
#: connects with) as host "evil".
_UNSAFE_URL = re.compile(r"[\\\s\x00-\x1f\x7f]")


def host_allowed(url: str, allowed_hosts) -> bool:
    """True for http(s) URLs whose host is an allowed host or a sub-domain of one.

    The host must be the same for Python's parser and for urllib3's, the one requests connects
    with; a URL with a backslash, whitespace or a control character, or one that either cannot
    parse, is refused.
    """
    if _UNSAFE_URL.search(url):
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        connects_to = (urllib3.util.parse_url(url).host or "").strip("[]").lower().rstrip(".")
    except (ValueError, urllib3.exceptions.LocationParseError):
        return False
    if parts.scheme not in ("http", "https") or not host or connects_to != host:
        return False
    for allowed in allowed_hosts:
        allowed = str(allowed).lower().strip(".")
        if host == allowed or host.endswith("." + allowed):
            return True
    return False


class HostGate:
    """One request at a time per host, across processes, spaced by a shared 'not before' time."""

    def __init__(self, lock_dir: Path, host: str, max_wait: float = float("inf")):
        safe = re.sub(r"[^A-Za-z0-9.-]", "_", host.lower()) or "host"
        self.path = Path(lock_dir) / f"{safe}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_wait = max_wait  # a stamp far ahead (an older run's setting) costs no more

    @contextlib.contextmanager
    def turn(self):
        """Hold the host: wait for the shared lock and the pause, yield, then record the next pause.

        The caller sets ``turn.pause`` (seconds after the request ends before the next may start).
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                not_before = float(os.pread(fd, 64, 0).decode() or 0)
            except ValueError:  # a writer killed mid-write: no pause is owed
                not_before = 0.0
            wait = min(not_before - time.time(), self.max_wait)
            if wait > 0:
                time.sleep(wait)
            turn = _Turn()
            try:
                yield turn
            finally:
                stamp = f"{time.time() + turn.pause:.6f}".encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, stamp, 0)
        finally:
            os.close(fd)  # closing releases the flock


@dataclass
class _Turn:
    pause: float = 0.0


@dataclass
class Response:
    url: str
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", value):  # ASCII digits only: "²".isdigit() is True too
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - (now or time.time()))
    return None


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a redirect's Location names; FetchError when it cannot be parsed (a
    hostile ``http://[::1/x`` makes urljoin raise), so the caller skips it like any bad URL."""
    try:
        return urljoin(url, location)
    except ValueError as exc:
        raise FetchError(url, f"redirect to an unparseable URL {location!r} ({exc})") from None


class Fetcher:
    """GET with every rule of the issue: allow-list, robots.txt, spacing, retries, caps."""

    def __init__(self, settings: dict, lock_dir: str | os.PathLike, logger=None):
        self.s = resolve(settings)
        self.lock_dir = Path(lock_dir)
        self.log = logger or log
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": self.s["user_agent"], "Accept-Encoding": "gzip"})
        self.robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self.crawl_delay: dict[str, float] = {}
        self.forbidden_streak = 0
        self.failing_streak = 0
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    # -- public ---------------------------------------------------------------------------------

    def get(self, url: str, max_bytes: int | None = None) -> Response:
        """The 200 response for ``url`` after redirects, or FetchError/NotAllowed/Blocked.

        Failures that may pass are counted in a row (any answer of the site resets the count;
        a URL refused without asking does not): at ``max_failing`` this raises :class:`Failing`.
        """
        try:
            response = self._follow(url, max_bytes)
        except Blocked:
            raise
        except FetchError as exc:
            if exc.transient:
                self.failing_streak += 1
                if self.failing_streak >= int(self.s["max_failing"]):
                    raise Failing(exc.url, f"{self.failing_streak} requests in a row failed for "
                                           f"reasons that may pass, the last: {exc.reason}",
                                  exc.status, transient=True) from exc
            elif not isinstance(exc, NotAllowed):
                self.failing_streak = 0
            raise
        self.failing_streak = 0
        return response

    def _follow(self, url: str, max_bytes: int | None) -> Response:
        """:meth:`get` without the count: the checks, the attempts and the redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_allowed(url)
            self._check_robots(url)
            response = self._attempts(url, max_bytes or self.s["max_bytes"])
            if response.status in REDIRECTS and response.headers.get("location"):
                target = redirect_target(url, response.headers["location"])
                self.log.info("redirect %s -> %s", url, target)
                url = target
                continue
            return self._accept(response)
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")

    def get_page(self, url: str) -> Response:
        """:meth:`get` for a page, an API answer or a list, capped at MAX_PAGE_BYTES."""
        return self.get(url, min(MAX_PAGE_BYTES, int(self.s["max_bytes"])))

    # -- rules ----------------------------------------------------------------------------------

    def _check_allowed(self, url: str) -> None:
        if not host_allowed(url, self.s["allowed_hosts"]):
            raise NotAllowed(url, "host not in allowed_hosts (not fetched)")

    def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc}"
        if root not in self.robots:
            self.robots[root] = self._load_robots(root)
        parser = self.robots[root]
        if parser is None:
            raise NotAllowed(url, "robots.txt unavailable, host treated as disallowed (not fetched)",
                             transient=True)
        if not parser.can_fetch(self.s["user_agent"], url):
            raise NotAllowed(url, "disallowed by robots.txt (not fetched)")

    def _load_robots(self, root: str) -> urllib.robotparser.RobotFileParser | None:
        """robots.txt of a host, read as RFC 9309 says (section 2.3.1).

        Any 4xx (401 and 403 included) means the host has no rules: everything is allowed, which
        matters for image hosts that forbid robots.txt itself. 5xx or unreachable means the host
        is fully disallowed (None) until a later run finds it working.
        """
        url = f"{root}/robots.txt"
        parser = urllib.robotparser.RobotFileParser(url)
        try:
            response = self._attempts(url, self.s["max_bytes"])
            if response.status in REDIRECTS and response.headers.get("location"):
                target = redirect_target(url, response.headers["location"])
                if not host_allowed(target, self.s["allowed_hosts"]):
                    raise FetchError(url, "robots.txt redirects outside allowed_hosts")
                response = self._attempts(target, self.s["max_bytes"])
        except FetchError as exc:
            self.log.warning("robots.txt of %s unavailable (%s): host treated as disallowed", root, exc.reason)
            return None
        if response.status >= 500 or response.status in REDIRECTS:
            self.log.warning("robots.txt of %s: HTTP %d, host treated as disallowed", root, response.status)
            return None
        if response.status >= 400:  # "unavailable" in RFC 9309: no rules, everything allowed
            self.log.info("robots.txt of %s: HTTP %d, no rules (RFC 9309)", root, response.status)
            parser.parse([])
            return parser
        parser.parse(response.body.decode("utf-8", "replace").splitlines())
        delay = parser.crawl_delay(self.s["user_agent"])
        if delay:
            most = float(self.s["max_retry_after_s"])
            if float(delay) > most:
                self.log.warning("robots.txt of %s asks a Crawl-delay of %s s: %g s used "
                                 "(max_retry_after_s)", root, delay, most)
            self.crawl_delay[urlsplit(root).netloc] = min(float(delay), most)
        return parser

    def _accept(self, response: Response) -> Response:
        """Turn a final status into a response or an error; count 403s in a row."""
        if response.status == 403:
            self.forbidden_streak += 1
            if self.forbidden_streak >= self.s["max_forbidden"]:
                raise Blocked(response.url, f"HTTP 403 {self.forbidden_streak} times in a row", 403)
            raise FetchError(response.url, "HTTP 403", 403)
        if response.status != 200:
            raise FetchError(response.url, f"HTTP {response.status}", response.status,
                             transient=response.status in RETRY_STATUSES)
        self.forbidden_streak = 0
        return response

    # -- transport ------------------------------------------------------------------------------

    def _delay(self, netloc: str) -> float:
        base = max(float(self.s["delay_s"]), self.crawl_delay.get(netloc, 0.0))
        return base * (1 + random.uniform(0, float(self.s["jitter"])))

    def _attempts(self, url: str, max_bytes: int) -> Response:
        """One response, retried with exponential backoff on timeouts, 5xx and 429."""
        netloc = urlsplit(url).netloc
        gate = HostGate(self.lock_dir, netloc, float(self.s["max_retry_after_s"]))
        retries = int(self.s["retries"])
        for attempt in range(retries + 1):
            backoff = float(self.s["delay_s"]) * 2 ** (attempt + 1)
            with gate.turn() as turn:
                turn.pause = self._delay(netloc)
                try:
                    response = self._once(url, max_bytes)
                except _TooLarge:
                    raise FetchError(url, f"response larger than max_bytes ({max_bytes})") from None
                except _Deadline:
                    problem, response = f"no complete response within {self.s['timeout_s']} s", None
                except TRANSIENT as exc:
                    problem, response = f"transfer failed ({type(exc).__name__}: {exc})", None
                if response is not None:
                    if response.status not in RETRY_STATUSES:
                        return response
                    problem = f"HTTP {response.status}"
                    asked = retry_after_s(response.headers.get("retry-after"))
                    if asked is not None and response.status in (429, 503):
                        wait = min(asked, float(self.s["max_retry_after_s"]))
                        backoff = max(backoff, wait)
                        turn.pause = max(turn.pause, wait)  # owed after the last attempt too
                        problem += f", Retry-After {asked:g} s"
                if attempt < retries:
                    turn.pause = max(turn.pause, backoff)
            if attempt < retries:
                self.log.info("%s: %s; attempt %d of %d in %.2f s", url, problem, attempt + 2,
                              retries + 1, turn.pause)
        if response is not None:
            return response  # the last 5xx/429 itself: the caller reports its status
        raise FetchError(url, problem, transient=True)

    def _once(self, url: str, max_bytes: int) -> Response:
        """One GET, no redirects followed, the body read against a deadline and a size cap.

        ``read1`` returns whatever one read gives, so a server that trickles bytes forever still
        meets the deadline (a read timeout alone never fires while bytes keep coming). The
        status line and headers are read inside requests, where no loop of ours can look at the
        clock: :func:`_alarm` raises the deadline there.
        """
        timeout = float(self.s["timeout_s"])
        start = time.monotonic()
        self.requests += 1
        with _alarm(timeout), self.session.get(url, stream=True, timeout=(timeout, timeout),
                                               allow_redirects=False) as r:
            headers = {k.lower(): v for k, v in r.headers.items()}
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _TooLarge()
            chunks, total = [], 0
            if r.status_code == 200:  # other bodies are never used
                while True:
                    if time.monotonic() - start > timeout:
                        raise _Deadline()
                    chunk = r.raw.read1(65536, decode_content=True)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > max_bytes:
                        raise _TooLarge()
                    chunks.append(chunk)
            if time.monotonic() - start > timeout:
                raise _Deadline()
            return Response(url, r.status_code, b"".join(chunks), headers)


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise _Deadline in this thread once ``seconds`` have passed, even inside a blocking read.

    Why: a server that sends its headers one byte at a time never trips a read timeout (each
    byte comes in time) and http.client reads up to 100 header lines of 64 KB, so without this
    one request could last days. SIGALRM interrupts the read (PEP 475 runs the handler, which
    raises). Signals reach only the main thread; elsewhere (no scrape runs there) only the
    timeouts apply.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
