"""Extract stage: the article body from its page (trafilatura), else the feed's own text.

trafilatura has no time limit of its own, and a huge or pathological page can keep it busy for minutes.
So pages are read in worker processes, killed and replaced when a page takes longer than ``timeout``
seconds. A worker is a fresh interpreter started with ``subprocess`` (never a fork of this process, whose
other threads may hold locks, and never a re-run of the caller's main script as multiprocessing's spawn
would do). Workers start on first use and stop at interpreter exit. Each reads one page at a time; callers
in several threads share them, waiting for a free one.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

MIN_PAGE_WORDS = 40  # below this a page yielded a teaser or a paywall notice, not the article
MAX_PAGE_CHARS = 5_000_000  # larger pages are not read at all
MAX_PAGE_ELEMENTS = 200_000  # pages whose parsed tree is larger are not handed to trafilatura


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


EXTRACT_TIMEOUT = _env_number("AGGREGATOR_EXTRACT_TIMEOUT", 10.0)  # seconds per page
def _cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# One worker a core: extraction is most of a full-text poll's work, and clustering stays in the main process.
EXTRACT_WORKERS = max(1, int(_env_number("AGGREGATOR_EXTRACT_WORKERS", _cores())))
# Pages handed to the extraction processes at once, for each of them: one to extract and one waiting keep every
# process busy while the next pages are fetched (the poll and a worker both bound their pages in flight by it).
PAGES_PER_PROCESS = 2
EXTRACT_MEMORY_MB = int(_env_number("AGGREGATOR_EXTRACT_MEMORY_MB", 2048))  # address space per worker; 0: none
# A worker is replaced after this many pages, dropping whatever its caches kept. A new one costs about a second
# of CPU (importing trafilatura, its stop lists): 2 ms a page when replaced every 500 pages, 0.5 ms every 2,000,
# while its memory stays capped by EXTRACT_MEMORY_MB whatever the count.
PAGES_PER_WORKER = 2000
START_TIMEOUT = 60.0  # seconds for a new worker to import trafilatura and report ready
RETRY_START_AFTER = 60.0  # after a worker failed to start, pages are read in-process for this long

_SENTENCE_END = re.compile(r"[.!?][\"'”’)]?\s+(?=[A-Z0-9\"'“‘(])")
# A period after these ends an abbreviation, not a sentence ("U.S. President", "Dec. 11", "Mr. Orbán").
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:[A-Z]\.)*[A-Z]$|(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Prof|Inc|Co|"
    r"Corp|Ltd|No|vs|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mt|Ft|approx|est)$"
)
# Control characters other than tab and newline, lone surrogates and non-characters never reach the store.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


@dataclass
class Extracted:
    text: str
    source: str  # "page", "feed" or "title": where the text came from


class PageTooLarge(ValueError):
    """The page's tree has more elements than extraction is allowed to walk."""


def _bounded_document(html: str, max_elements: int) -> object | None:
    """``html`` itself when its tree cannot exceed ``max_elements``, else its parsed tree, counted first
    (None: not HTML at all).

    Every element of the tree comes from a ``<`` of the page, but for the few the parser implies (html, head,
    body, a paragraph around stray text): a page with at most half as many ``<`` as allowed elements is
    handed over as it is, and trafilatura parses it once. Only a larger page is parsed here and counted,
    and then trafilatura copies that tree before pruning it, a cost the usual page does not pay.
    """
    if html.count("<") <= max_elements // 2:
        return html
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        return None
    if sum(1 for _ in itertools.islice(tree.iter(), max_elements + 1)) > max_elements:
        raise PageTooLarge(f"page has more than {max_elements} elements")
    return tree


def article_text(html: str, url: str | None = None, max_elements: int = MAX_PAGE_ELEMENTS) -> str:
    """trafilatura's main text of ``html``, computed where it is called (the workers call this)."""
    # Imported here, not at the top: only the extraction workers need trafilatura (a few hundred milliseconds
    # to import), and the rest of this module serves the CLI and the clustering code too.
    import trafilatura

    document = _bounded_document(html, max_elements)
    if document is None:
        return ""
    text = trafilatura.extract(
        document,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        # No deduplicate=True: its cache lives across calls, so a wire copy's page would come back empty.
    )
    return (text or "").strip()


Extractor = Callable[[str, str | None, int], str]

# A worker loads this file by its path: importing it as aggregator.extract would first import the whole
# package (a second and 80 MB more per worker) for nothing. Its only other imports are trafilatura's.
_WORKER_MODULE = "aggregator_extract_worker"
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    f"spec = importlib.util.spec_from_file_location({_WORKER_MODULE!r}, sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "module._serve(int(sys.argv[2]), int(sys.argv[3]))\n"
)


def _spec(extract: Extractor | str) -> str:
    """"module:function" naming an extractor, which must be a module-level function."""
    if isinstance(extract, str):
        return extract
    module, name = extract.__module__, extract.__qualname__
    if module == _WORKER_MODULE:
        module = "aggregator.extract"
    if "<" in name or not module:
        raise ValueError(f"extractor {extract!r} is not a module-level function")
    return f"{module}:{name}"


def _resolve(spec: str) -> Extractor:
    import importlib

    module, _, name = spec.partition(":")
    if module in ("aggregator.extract", __name__):
        return globals()[name]
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _serve(read_fd: int, write_fd: int) -> None:
    """A worker's loop: a settings message, then requests (url, html) answered with (kind, text).

    The worker ends when its request pipe closes (the pool stopped it, or the parent is gone), and by
    SIGALRM when a page runs far past its time limit, in case no parent is left to kill it.
    """
    import warnings

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    warnings.simplefilter("ignore")
    logging.getLogger().addHandler(logging.NullHandler())  # trafilatura's complaints stay here
    requests, answers = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        settings = json.loads(requests.recv_bytes())
        sys.path[:] = settings["sys_path"]
        extract = _resolve(settings["extract"])
        if extract is article_text:
            import trafilatura  # noqa: F401  (before "ready", so that no page's time limit pays for the import)
        if settings["memory_mb"] > 0:
            try:
                import resource

                limit = settings["memory_mb"] * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            except (ImportError, ValueError, OSError):
                pass
        answers.send_bytes(b"ready %d" % os.getpid())
        alarm = getattr(signal, "setitimer", None)
        while True:
            header, _, body = requests.recv_bytes().partition(b"\n")
            url, give_up_after = json.loads(header)
            if alarm is not None:
                # A backstop should the parent be gone and not kill this worker: SIGALRM ends the process.
                alarm(signal.ITIMER_REAL, give_up_after)
            try:
                kind, text = "ok", extract(body.decode("utf-8", "surrogatepass"), url, settings["max_elements"])
            except MemoryError:
                kind, text = "fatal", "ran out of memory"
            except Exception as exc:  # trafilatura raises many kinds on broken markup; report, keep serving
                kind, text = "error", f"{type(exc).__name__}: {exc}"[:300]
            if alarm is not None:
                alarm(signal.ITIMER_REAL, 0)
            answers.send_bytes(kind.encode() + b"\n" + str(text).encode("utf-8", "surrogatepass"))
            if kind == "fatal":
                return
    except (EOFError, OSError):  # the parent closed the pipe or went away
        return


class _Worker:
    """One worker process and the parent's ends of its two pipes."""

    def __init__(self, extract: str, max_elements: int, memory_mb: int, start_timeout: float):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, os.path.abspath(__file__), str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C goes to the parent, which stops the workers
            )
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.requests = Connection(to_child_w, readable=False)
        self.answers = Connection(from_child_r, writable=False)
        self.pages = 0
        settings = {"sys_path": sys.path, "extract": extract, "max_elements": max_elements, "memory_mb": memory_mb}
        try:
            self.requests.send_bytes(json.dumps(settings).encode())
            if not self.answers.poll(start_timeout):
                raise OSError(f"no greeting within {start_timeout:g} s")
            if not self.answers.recv_bytes().startswith(b"ready"):
                raise OSError("no greeting")
        except (EOFError, OSError) as exc:
            self.kill()
            raise OSError(f"extraction worker did not start: {exc or type(exc).__name__}") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return not self.answers.closed and self.process.poll() is None

    def run(self, html: str, url: str | None, timeout: float) -> tuple[str, str]:
        """("ok", text), ("error", message), or ("timeout" | "crash" | "fatal", message): the worker is then dead."""
        self.pages += 1
        try:
            header = json.dumps([url, timeout + 5]).encode()
            self.requests.send_bytes(header + b"\n" + html.encode("utf-8", "surrogatepass"))
            if not self.answers.poll(timeout):
                self.kill()
                return "timeout", f"no answer within {timeout:g} s"
            kind, _, text = self.answers.recv_bytes().partition(b"\n")
        except (EOFError, OSError) as exc:
            self.kill()
            return "crash", f"worker ended (exit status {self.process.poll()}): {type(exc).__name__}"
        except BaseException:  # interrupted mid-page: its answer must never be read as the next page's
            self.kill()
            raise
        return kind.decode("ascii", "replace"), text.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # SIGKILL was sent; the kernel reaps it
            pass
        for conn in (self.requests, self.answers):
            if not conn.closed:
                conn.close()

    def stop(self) -> None:
        """Close the worker's request pipe, on which it ends, and kill it if it has not after a moment."""
        if not self.requests.closed:
            self.requests.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class ExtractorPool:
    """Up to ``workers`` worker processes running ``extract(html, url, max_elements)`` under a time limit.

    Thread-safe: each call takes a free worker (waiting for one), starts it if needed and hands it back.
    A worker that overruns ``timeout`` or dies is killed; its slot starts a fresh one on the next call.
    ``extract`` is a module-level function (or "module:function"), imported by name in each worker.
    """

    def __init__(
        self,
        workers: int = EXTRACT_WORKERS,
        timeout: float = EXTRACT_TIMEOUT,
        extract: Extractor | str = article_text,
        max_elements: int = MAX_PAGE_ELEMENTS,
        memory_mb: int = EXTRACT_MEMORY_MB,
        pages_per_worker: int = PAGES_PER_WORKER,
        start_timeout: float = START_TIMEOUT,
    ):
        self.timeout = timeout
        self.extract_spec = _spec(extract)
        self.max_elements = max_elements
        self.memory_mb = memory_mb
        self.pages_per_worker = pages_per_worker
        self.start_timeout = start_timeout
        self.restarts = 0  # workers killed after a time-out or a crash
        self._slots: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(max(1, workers)):
            self._slots.put(None)
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._in_process_until = 0.0
        _pools.add(self)

    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        with self._lock:
            return [worker.pid for worker in self._workers if worker.alive]

    def _start(self) -> _Worker | None:
        if time.monotonic() < self._in_process_until:
            return None
        try:
            worker = _Worker(self.extract_spec, self.max_elements, self.memory_mb, self.start_timeout)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            log.warning("%s; reading pages in-process, without a time limit, for %.0f s", exc, RETRY_START_AFTER)
            self._in_process_until = time.monotonic() + RETRY_START_AFTER
            return None
        with self._lock:
            if self._closed:
                worker.stop()
                return None
            self._workers.add(worker)
        return worker

    def _retire(self, worker: _Worker, stop: bool) -> None:
        with self._lock:
            self._workers.discard(worker)
        if stop:
            worker.stop()
        else:
            worker.kill()

    def _in_process(self, html: str, url: str | None) -> str:
        try:
            return _resolve(self.extract_spec)(html, url, self.max_elements)
        except Exception as exc:  # as in a worker: a page never stops a poll
            log.warning("extraction of %s failed: %s", url, exc)
            return ""

    def run(self, html: str, url: str | None = None, timeout: float | None = None) -> str:
        """The extracted text; "" (a warning logged) when the page overran, broke, or took its worker down."""
        timeout = self.timeout if timeout is None else timeout
        worker = self._slots.get()
        try:
            if self._closed:
                return ""
            if worker is not None and not worker.alive:
                self._retire(worker, stop=False)
                worker = None
            if worker is None:
                worker = self._start()
            if worker is None:  # no worker could start: the page is still read, without a time limit
                return self._in_process(html, url)
            kind, value = worker.run(html, url, timeout)
            if kind != "ok":
                if kind == "timeout":
                    _stats().extraction_timed_out()
                if kind in ("timeout", "crash", "fatal"):
                    self.restarts += 1
                    self._retire(worker, stop=False)
                    worker = None
                    value += "; worker replaced"
                log.warning("extraction of %s failed: %s", url, value)
                return ""
            return value
        finally:
            if worker is not None and worker.pages >= self.pages_per_worker:
                self._retire(worker, stop=True)
                worker = None
            self._slots.put(worker)

    def close(self) -> None:
        """Stop every worker; calls made after this, or waiting now, return ""."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.stop()


_pools: weakref.WeakSet[ExtractorPool] = weakref.WeakSet()  # every pool, all stopped at exit
_pool: ExtractorPool | None = None  # the shared one
_pool_lock = threading.Lock()


def extraction_pool() -> ExtractorPool:
    """The shared pool, made on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ExtractorPool()
        return _pool


def configure_extraction(**options) -> ExtractorPool:
    """Replace the shared pool by one made with ``options`` (see ExtractorPool), stopping the old one."""
    global _pool
    with _pool_lock:
        old, _pool = _pool, ExtractorPool(**options)
    if old is not None:
        old.close()
    return _pool


def shutdown_extraction() -> None:
    """Stop the shared pool's workers; the next extraction starts new ones. (Every pool stops at exit.)"""
    global _pool
    with _pool_lock:
        old, _pool = _pool, None
    if old is not None:
        old.close()


@atexit.register
def _stop_all_pools() -> None:
    for pool in list(_pools):
        pool.close()


def _stats():
    # Imported here: the workers load this file on its own, outside the package, and never measure.
    from aggregator import stats

    return stats


def extract_from_html(html: str, url: str | None = None, *, timeout: float | None = None) -> str:
    """The main text of an article page, paragraphs on their own lines; "" when nothing was found.

    Runs in a worker process and gives up after ``timeout`` seconds (EXTRACT_TIMEOUT by default), as it
    does on a page too large or one that breaks the extractor: the caller then uses the feed's own text.
    """
    if not html or len(html) > MAX_PAGE_CHARS:
        if html:
            log.warning("page %s not read: %d characters, more than %d", url, len(html), MAX_PAGE_CHARS)
        return ""
    started = time.monotonic()
    text = extraction_pool().run(html, url, timeout)
    _stats().extraction_took(time.monotonic() - started)
    return _UNSAFE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")) if text else ""


def choose_text(page_text: str, feed_text: str, title: str) -> Extracted:
    """The page's text when it is substantial, else the feed's own text, else the title."""
    feed_words = len(feed_text.split())
    if _has_words(page_text, max(MIN_PAGE_WORDS, math.ceil(0.5 * feed_words))):
        return Extracted(page_text, "page")
    if feed_text.strip():
        return Extracted(feed_text.strip(), "feed")
    return Extracted(title.strip(), "title")


def _has_words(text: str, count: int) -> bool:
    """Whether ``text`` holds at least ``count`` words, splitting no further than that (a page's text is long)."""
    return len(text.split(None, count)) >= count


def lead_sentence(text: str, limit: int = 300) -> str:
    """The first sentence of a text (a dateline kept), cut at ``limit`` characters."""
    first_par = next((p.strip() for p in text.split("\n") if len(p.split()) >= 5), text.strip())
    sentence = first_par
    for match in _SENTENCE_END.finditer(first_par):
        if not _ABBREVIATION.search(first_par[: match.start()]):
            sentence = first_par[: match.end()]
            break
    sentence = sentence.strip()
    if len(sentence) > limit:
        sentence = sentence[: limit - 1].rsplit(" ", 1)[0] + "…"
    return sentence
