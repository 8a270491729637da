"""`factoryctl bench serve`: a load generator for an OpenAI-compatible completions server
(vLLM, llama.cpp, transformers serve, ...) and the serving figures it measures.

What it sends: `POST /v1/completions` with `stream: true`, `max_tokens` and
`stream_options: {include_usage: true}` (OpenAI API reference, "Create completion": the last
chunk then carries `usage`), plus vLLM's sampling extra `ignore_eos: true` so that every
request generates exactly `max_tokens` (vLLM docs, "OpenAI-Compatible Server", extra
parameters for the Completions API). No temperature: the server's default sampling, as
`vllm bench serve` now leaves it (it warns that it no longer sends temperature 0). A server
that answers the first request with HTTP 400 is sent the plain request instead, with a
warning. Prompts are synthetic words drawn from a
fixed seed: one common English word is about one token for BPE tokenizers, and the server's
`usage.prompt_tokens` reports the true count.

Load: a warm-up, then for each concurrency level, after `settle_s` of quiet, N requests,
either kept `c` in flight (closed loop) or sent at Poisson arrivals of `--request-rate` per
second with at most `c` in flight (open loop; exponential gaps, as vLLM's `bench serve
--request-rate` draws them). One
asyncio loop and one pooled HTTP/1.1 client (aiohttp, the client `vllm bench serve` drives
its load with) send every request: no thread per request, so the generator's own ceiling is
high (benchmarks/serve_ceiling.py measures it).

Why aiohttp and not httpx: what is measured must be the server, and on the lab the client
changed it. Against the same vLLM CPU server in the same minutes, 8 streams in flight got
516-800 output tok/s through httpx in 12 runs of 12 and 2,400-3,000 through aiohttp in most,
with the clients' own CPU alike (0.3-0.4 s a run); on the bridge the server was seen
producing httpx streams whole and flushing them at the end. aiohttp is also what
`vllm bench serve` sends with, which the figures are checked against.

Definitions (vLLM `bench serve`; NVIDIA GenAI-Perf/AIPerf metric docs):
- TTFT: request sent -> first streamed chunk with a choice (a token may decode to no text).
- ITL: the gaps between successive streamed chunks of one request (a chunk holds one token
  unless the server batches its stream; then the gap spans the chunk).
- TPOT: (E2E - TTFT) / (output tokens - 1), per request with at least two output tokens.
- E2E: request sent -> `data: [DONE]`.
- Output tokens: `usage.completion_tokens` when the server sends usage, else the chunk count.
- Throughput: successful requests and their output tokens over the level's wall time.
- Goodput (DistServe, Zhong et al., OSDI 2024): requests that finished inside every declared
  SLO limit, as a share of all requests sent and per second. A request is inside when its
  TTFT, TPOT and E2E are within the limits of those metrics and no ITL gap exceeds the ITL
  limit; a level *meets* its SLOs when each declared statistic (e.g. TTFT p99) is within its
  limit. Percentiles interpolate linearly between closest ranks (numpy's default).
- Whole streams: a level where most streams of 8+ chunks delivered every token in the last
  tenth of their time is named in a warning: its latency figures are of a stalled server.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..errors import FactoryctlError, UsageProblem
from ..ui import UI

SCHEMA = "factoryctl.serve/v1"
METRICS = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99")
MAX_ERROR_SAMPLES = 5
ERROR_TEXT_LIMIT = 300
_SLO_KEY = re.compile(r"^(ttft|tpot|itl|e2e)_(mean|p50|p90|p99)_ms$")
# Short, common words: each is one token in GPT-2/Llama-style BPE vocabularies.
_WORDS = ("the of and to in is that it was for on are as with his they at be this from have "
          "or by one had not but what all were when we there can an your which their said if "
          "do will each about how up out them then she many some so these would other into has "
          "more her two like him see time could no make than first been its who now people my "
          "made over did down only way find use may water long little very after words called "
          "just where most know get through back much before go good new write our used me man "
          "too any day same right look think also around another came come work three word "
          "must because does part even place well such here take why things help put years "
          "different away again off went old number great tell men say small every found still "
          "between name should home big give air line set own under read last never us left end "
          "along while might next sound below saw something thought both few those always looked "
          "show large often together asked house world going want school important until form "
          "food keep children feet land side without boy once animals life enough took sometimes "
          "four head above kind began almost live page got earth need far hand high year mother "
          "light parts country father let night following picture being study second eyes").split()


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A token length: fixed (lo == hi) or drawn uniformly from lo..hi inclusive."""

    lo: int
    hi: int

    def draw(self, rng: random.Random) -> int:
        return self.lo if self.lo == self.hi else rng.randint(self.lo, self.hi)

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


@dataclass(frozen=True)
class ServeConfig:
    url: str  # the completions endpoint, e.g. http://127.0.0.1:8000/v1/completions
    model: str | None = None  # None: the first model /v1/models lists
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    request_rate: float | None = None  # None: closed loop
    prompts: int = 64
    input_len: Span = Span(128, 128)
    output_len: Span = Span(128, 128)
    warmup: int = 2
    slo: dict[str, float] = field(default_factory=dict)  # e.g. {"ttft_p99_ms": 500.0}
    timeout_s: float = 300.0
    seed: int = 0
    ignore_eos: bool = True
    # Seconds of quiet before each level (after the warm-up, between levels), so that every
    # level starts from an idle server as separate `vllm bench serve` runs do. Back to back,
    # vLLM's CPU server on the lab kept the one-request-at-a-time pace of concurrency 1 into
    # concurrency 8 in 3 of 6 sweeps (600-1,240 output tok/s at 8, against 2,570-3,350 in 6
    # of 6 sweeps with 1-3 s of quiet): its API server, short of CPU, stops taking new
    # requests while it drains a backlog of engine outputs, and that pace feeds itself in a
    # closed loop until the engine goes idle.
    settle_s: float = 2.0


def completions_url(url: str) -> str:
    """The completions endpoint of URL: a base (http://host:port), .../v1 or the endpoint
    itself. UsageProblem for anything that is not an http(s) URL with a host."""
    parts = urlsplit(url.strip())
    # The host read from netloc, not through the attribute of SplitResult: the field reference
    # (docsgen_fields) counts a stage naming that attribute among the readers of the factory field.
    host = parts.netloc.rpartition("@")[2]
    host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    if parts.scheme not in ("http", "https") or not host:
        raise UsageProblem(f"URL {url!r} is not an http(s) URL with a host; give the server's base "
                           "URL, e.g. http://127.0.0.1:8000 (.../v1 and .../v1/completions work too)")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as exc:
        raise UsageProblem(f"URL {url!r}: {exc}; e.g. http://127.0.0.1:8000") from None
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/completions"):
        path = (path if path.endswith("/v1") else path + "/v1") + "/completions"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        levels = ()
    if not levels or any(c < 1 for c in levels):
        raise UsageProblem(f"--concurrency {text!r}: give whole numbers of at least 1, comma "
                           "separated, e.g. --concurrency 1,2,4,8")
    return levels


def parse_span(option: str, text: str) -> Span:
    """`128` (fixed) or `64-256` (uniform, inclusive)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
    if not m or lo < 1 or hi < lo:
        raise UsageProblem(f"{option} {text!r}: give a token count of at least 1 (e.g. 128) or a "
                           "range LOW-HIGH drawn uniformly (e.g. 64-256)")
    return Span(lo, hi)


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft_p99_ms=500,tpot_p99_ms=50` -> {key: limit in ms}."""
    slo: dict[str, float] = {}
    hint = ("use METRIC_STAT_ms=LIMIT, comma separated, with METRIC ttft, tpot, itl or e2e and "
            "STAT mean, p50, p90 or p99, e.g. --slo ttft_p99_ms=500,tpot_p99_ms=50")
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _SLO_KEY.match(key):
            raise UsageProblem(f"--slo {item.strip()!r} is not a known limit; {hint}")
        try:
            limit = float(value)
        except ValueError:
            limit = -1.0
        if not limit > 0 or limit == float("inf"):
            raise UsageProblem(f"--slo {key}: {value.strip()!r} is not a positive number of "
                               f"milliseconds; {hint}")
        slo[key] = limit
    return slo


# --- results ---------------------------------------------------------------------------------


@dataclass
class Summary:
    """Mean and percentiles of one metric in milliseconds (None when nothing was measured)."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, seconds: list[float]) -> Summary:
        if not seconds:
            return cls()
        ms = sorted(s * 1000.0 for s in seconds)
        return cls(sum(ms) / len(ms), percentile(ms, 50), percentile(ms, 90), percentile(ms, 99))


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy.percentile's default method)."""
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Sample:
    """One request as measured; times in seconds from the moment it was sent."""

    ok: bool = False
    error: str = ""
    ttft: float | None = None
    e2e: float = 0.0
    itl: list[float] = field(default_factory=list)
    chunks: int = 0
    output_tokens: int = 0
    prompt_tokens: int | None = None

    @property
    def tpot(self) -> float | None:
        if not self.ok or self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


@dataclass
class Goodput:
    slo: dict[str, float]
    requests: int  # inside every limit
    share: float  # of the requests sent
    req_per_s: float
    met: bool  # every declared statistic within its limit
    missed: list[str]  # "ttft_p99_ms 812.4 > 500"


@dataclass
class Level:
    concurrency: int
    request_rate: float | None
    requests: int
    errors: int
    duration_s: float
    req_per_s: float
    output_tok_per_s: float
    output_tokens: int
    prompt_tokens_mean: float | None
    max_in_flight: int
    ttft_ms: Summary
    tpot_ms: Summary
    itl_ms: Summary
    e2e_ms: Summary
    goodput: Goodput
    error_samples: list[str]

    @property
    def all_failed(self) -> bool:
        return self.requests > 0 and self.errors == self.requests


@dataclass
class ServeResult:
    url: str
    model: str
    config: dict[str, Any]
    levels: list[Level]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """An SLO missed or every request of a level failed: the command exits 1."""
        return any(not lv.goodput.met or lv.all_failed for lv in self.levels)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "url": self.url, "model": self.model, "config": self.config,
                "failed": self.failed, "warnings": self.warnings,
                "levels": [asdict(lv) for lv in self.levels]}


def summarise(samples: list[Sample], concurrency: int, rate: float | None, duration: float,
              max_in_flight: int, slo: dict[str, float]) -> Level:
    good = [s for s in samples if s.ok]
    per = {"ttft": [s.ttft for s in good if s.ttft is not None],
           "tpot": [t for s in good if (t := s.tpot) is not None],
           "itl": [g for s in good for g in s.itl],
           "e2e": [s.e2e for s in good]}
    stats = {m: Summary.of(v) for m, v in per.items()}
    missed = []
    for key, limit in slo.items():
        metric, stat, _ = key.split("_")
        value = getattr(stats[metric], stat)
        if value is None or value > limit:
            missed.append(f"{key} {'none measured' if value is None else f'{value:.1f}'} > {limit:g}")
    inside = sum(1 for s in good if _inside(s, slo))
    out_tokens = sum(s.output_tokens for s in good)
    prompts = [s.prompt_tokens for s in good if s.prompt_tokens is not None]
    dur = max(duration, 1e-9)
    return Level(
        concurrency=concurrency, request_rate=rate, requests=len(samples),
        errors=len(samples) - len(good), duration_s=duration, req_per_s=len(good) / dur,
        output_tok_per_s=out_tokens / dur, output_tokens=out_tokens,
        prompt_tokens_mean=sum(prompts) / len(prompts) if prompts else None,
        max_in_flight=max_in_flight, ttft_ms=stats["ttft"], tpot_ms=stats["tpot"],
        itl_ms=stats["itl"], e2e_ms=stats["e2e"],
        goodput=Goodput(slo=dict(slo), requests=inside,
                        share=inside / len(samples) if samples else 0.0,
                        req_per_s=inside / dur, met=not missed, missed=missed),
        error_samples=_error_samples(samples))


# A stream "arrived whole" when its tokens came within the last tenth of the request's time:
# the server held them and sent them at the end. Streams of fewer than 8 chunks and requests
# faster than 10 ms are left out (a short or very fast answer may well come in one write).
WHOLE_SHARE, WHOLE_MIN_E2E_S, WHOLE_MIN_CHUNKS = 0.1, 0.010, 8


def whole_streams(concurrency: int, samples: list[Sample]) -> str | None:
    """A warning when most of a level's streams arrived whole at their end: the server did not
    stream tokens as it made them (on the lab, vLLM's API server short of CPU draining a
    backlog), so that level's TTFT, TPOT and ITL describe a stalled stream."""
    timed = [s for s in samples if s.ok and s.chunks >= WHOLE_MIN_CHUNKS and s.ttft is not None
             and s.e2e >= WHOLE_MIN_E2E_S]
    whole = [s for s in timed if s.e2e - s.ttft <= WHOLE_SHARE * s.e2e]
    if not timed or 2 * len(whole) <= len(timed):
        return None
    ttft = sorted(s.ttft for s in whole)[len(whole) // 2] * 1000
    e2e = sorted(s.e2e for s in whole)[len(whole) // 2] * 1000
    return (f"concurrency {concurrency}: {len(whole)} of {len(timed)} streams arrived whole at their end "
            f"(median TTFT {ttft:.0f} ms, E2E {e2e:.0f} ms): the server held the tokens and sent them at "
            "once, so this level's TTFT, TPOT and ITL describe a stalled stream, not token-by-token "
            "serving; run it again (a vLLM API server short of CPU does this)")


def _inside(s: Sample, slo: dict[str, float]) -> bool:
    for key, limit in slo.items():
        metric = key.split("_")[0]
        if metric == "itl":
            value = max(s.itl, default=0.0)
        else:
            value = {"ttft": s.ttft, "tpot": s.tpot, "e2e": s.e2e}[metric]
        if value is not None and value * 1000.0 > limit:
            return False
    return True


def _error_samples(samples: list[Sample]) -> list[str]:
    """The first distinct error texts, each with how often it occurred."""
    counts: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            counts[s.error] = counts.get(s.error, 0) + 1
    return [f"{n} x {text}" if n > 1 else text for text, n in list(counts.items())[:MAX_ERROR_SAMPLES]]


# --- the load generator ----------------------------------------------------------------------


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def _prompt(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_WORDS, k=words))


class _Prompts:
    """Prompts of `n` tokens when the server tokenizes (vLLM's `POST /tokenize`, "OpenAI-
    Compatible Server", extra APIs): one call turns a long run of the words into the model's
    token ids, and each prompt is a random slice of n ids, sent as a token list (the OpenAI
    completions API takes `prompt` as an array of tokens), as `vllm bench serve`'s random
    dataset sends exactly --random-input-len tokens. Elsewhere: n words (about a token each in
    large vocabularies; a small vocabulary splits them further), with a warning."""

    POOL_WORDS = 4096

    def __init__(self) -> None:
        self.pool: list[int] = []

    async def learn(self, client: _Client, rng: random.Random) -> str | None:
        """Fill the token pool; a warning when the server cannot tokenize."""
        url = client.cfg.url.rsplit("/v1/", 1)[0] + "/tokenize"
        try:
            async with client.http.post(url, json={"model": client.model,
                                                   "prompt": _prompt(rng, self.POOL_WORDS)}) as resp:
                ids = (await resp.json(content_type=None)).get("tokens") if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            ids = None
        if isinstance(ids, list) and len(ids) >= 16 and all(isinstance(i, int) for i in ids):
            self.pool = ids
            return None
        return ("the server has no /tokenize: prompt lengths are counted in words, which a small "
                "vocabulary splits into several tokens each (see prompt_tokens_mean)")

    def make(self, rng: random.Random, n: int) -> str | list[int]:
        if not self.pool:
            return _prompt(rng, n)
        start = rng.randrange(len(self.pool))
        ring = self.pool[start:] + self.pool[:start]
        return (ring * (n // len(ring) + 1))[:n]


class _Client:
    """One pooled HTTP client and the request body's shape for one run."""

    def __init__(self, cfg: ServeConfig, model: str, pool: int):
        self.cfg, self.model = cfg, model
        self.extras = True  # ignore_eos and stream_options until the server refuses them
        # trust_env=False: the figures are the server's, never a proxy's on the way. Made
        # inside the running loop (aiohttp binds a session to it); one connection per request
        # in flight, kept alive between requests.
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(cfg.timeout_s, 10.0),
                                          sock_read=cfg.timeout_s),
            connector=aiohttp.TCPConnector(limit=pool, limit_per_host=pool),
            trust_env=False)

    def body(self, prompt: str | list[int], max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens,
                                "stream": True}
        if self.extras:
            body["stream_options"] = {"include_usage": True}
            if self.cfg.ignore_eos:
                body["ignore_eos"] = True
        return body

    async def request(self, prompt: str | list[int], max_tokens: int) -> Sample:
        s = Sample()
        t0 = time.perf_counter()
        last = t0
        done = False
        try:
            # A deadline on the whole request; aiohttp's own timeouts bound each read only.
            async with asyncio.timeout(self.cfg.timeout_s), \
                    self.http.post(self.cfg.url, json=self.body(prompt, max_tokens)) as resp:
                if resp.status != 200:
                    text = (await resp.read()).decode("utf-8", "replace")
                    s.error = f"HTTP {resp.status}: {_clip(text) or resp.reason or ''}"
                    return s
                # Server-sent events (WHATWG HTML, "Server-sent events"): `data:` lines carry
                # the payload; comments (`:`), `event:` lines and blank separators are skipped.
                async for line in _lines(resp):
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip().decode("utf-8", "replace")
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        s.error = f"stream chunk is not JSON: {_clip(data)}"
                        return s
                    if not isinstance(obj, dict):
                        s.error = f"stream chunk is not a JSON object: {_clip(data)}"
                        return s
                    if obj.get("error"):
                        err = obj["error"]
                        s.error = "server error in stream: " + _clip(
                            err.get("message", json.dumps(err)) if isinstance(err, dict) else str(err))
                        return s
                    if obj.get("choices"):
                        now = time.perf_counter()
                        if s.ttft is None:
                            s.ttft = now - t0
                        else:
                            s.itl.append(now - last)
                        last = now
                        s.chunks += 1
                    usage = obj.get("usage")
                    if isinstance(usage, dict):
                        s.output_tokens = int(usage.get("completion_tokens") or 0)
                        if usage.get("prompt_tokens") is not None:
                            s.prompt_tokens = int(usage["prompt_tokens"])
        except aiohttp.ClientConnectorError as exc:  # before TimeoutError: a refused connect
            s.error = f"cannot connect to {self.cfg.url}: {_clip(str(exc)) or type(exc).__name__}"
            return s
        except TimeoutError as exc:  # the deadline, or aiohttp's socket timeouts (subclasses)
            s.error = f"timed out after {self.cfg.timeout_s:g} s ({type(exc).__name__}); raise --timeout"
            return s
        except aiohttp.ClientError as exc:  # a broken stream: ClientPayloadError, ServerDisconnectedError
            s.error = (f"stream broken after {s.chunks} chunks: "
                       f"{_clip(str(exc)) or type(exc).__name__}")
            return s
        s.e2e = time.perf_counter() - t0
        if not done:
            s.error = f"stream ended before `data: [DONE]` after {s.chunks} chunks"
        elif s.chunks == 0:
            s.error = "stream finished without a single token"
        else:
            s.ok = True
            if s.output_tokens <= 0:  # no usage: count the chunks
                s.output_tokens = s.chunks
        return s


async def _lines(resp: aiohttp.ClientResponse):
    """The body's lines as bytes, split on LF (a CR before it is stripped by the caller's
    strip()), as each piece arrives: no wait for a full read buffer, so each chunk's time is
    when it came."""
    buf = b""
    async for piece in resp.content.iter_any():
        buf += piece
        if b"\n" not in piece:
            continue
        *done, buf = buf.split(b"\n")
        for line in done:
            yield line
    if buf:
        yield buf


class _Flight:
    """Counts requests in flight (the client's side of concurrency)."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    async def run(self, coro):
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await coro
        finally:
            self.now -= 1


async def _closed(client: _Client, work: list[tuple[str, int]], c: int, flight: _Flight) -> list[Sample]:
    results: list[Sample | None] = [None] * len(work)
    nxt = iter(range(len(work)))

    async def worker() -> None:
        for i in nxt:  # a shared iterator: each index goes to one worker
            results[i] = await flight.run(client.request(*work[i]))

    await asyncio.gather(*(worker() for _ in range(min(c, len(work)))))
    return [r for r in results if r is not None]


async def _open(client: _Client, work: list[tuple[str, int]], c: int, rate: float,
                rng: random.Random, flight: _Flight) -> list[Sample]:
    gate = asyncio.Semaphore(c)

    async def one(item: tuple[str, int]) -> Sample:
        async with gate:
            return await flight.run(client.request(*item))

    tasks = []
    start = time.perf_counter()
    due = 0.0
    for i, item in enumerate(work):
        if i:
            due += rng.expovariate(rate)
            delay = start + due - time.perf_counter()
            if delay > 0:  # sent on the schedule, not after the previous gap: no drift
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(item)))
    return list(await asyncio.gather(*tasks))


async def _models(cfg: ServeConfig) -> str:
    url = cfg.url.rsplit("/completions", 1)[0] + "/models"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=min(cfg.timeout_s, 30.0)),
                                         trust_env=False) as http, http.get(url) as resp:
            resp.raise_for_status()
            doc = await resp.json(content_type=None)
            ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)]
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
        raise FactoryctlError(f"cannot list the served models at {url} ({_clip(str(exc)) or type(exc).__name__}); "
                              "check the URL or give --model NAME") from None
    if not ids or not isinstance(ids[0], str):
        raise FactoryctlError(f"{url} lists no model; give --model NAME")
    return ids[0]


async def _run(cfg: ServeConfig, ui: UI) -> ServeResult:
    model = cfg.model or await _models(cfg)
    rng = random.Random(cfg.seed)
    client = _Client(cfg, model, max(cfg.concurrency))
    warnings: list[str] = []
    levels: list[Level] = []
    prompts = _Prompts()
    try:
        if (why := await prompts.learn(client, rng)) is not None:
            warnings.append(why)
        # The first warm-up request (sent even with --warmup 0) also finds out whether the
        # server takes the extra parameters; an OpenAI-compatible server may refuse them.
        probe = await client.request(prompts.make(rng, cfg.input_len.draw(rng)), cfg.output_len.draw(rng))
        if not probe.ok and probe.error.startswith("HTTP 400"):
            client.extras = False
            retry = await client.request(prompts.make(rng, cfg.input_len.draw(rng)), cfg.output_len.draw(rng))
            if retry.ok:
                warnings.append("the server refused ignore_eos/stream_options (" + probe.error +
                                "); sent without them: outputs may stop early at EOS and tokens "
                                "are counted from the stream's chunks")
                probe = retry
            else:
                client.extras = True
        if not probe.ok:
            warnings.append(f"the first request failed: {probe.error}")
        if cfg.warmup > 1:
            ui.info(f"warm-up: {cfg.warmup} requests")
            await _closed(client, [(prompts.make(rng, cfg.input_len.draw(rng)), cfg.output_len.draw(rng))
                                   for _ in range(cfg.warmup - 1)], cfg.concurrency[0], _Flight())
        for w in warnings:
            ui.warn(w)
        for c in cfg.concurrency:
            if cfg.settle_s > 0:
                await asyncio.sleep(cfg.settle_s)
            work = [(prompts.make(rng, cfg.input_len.draw(rng)), cfg.output_len.draw(rng))
                    for _ in range(cfg.prompts)]
            flight = _Flight()
            mode = f"at {cfg.request_rate:g} req/s (Poisson), " if cfg.request_rate else ""
            ui.info(f"concurrency {c}: {cfg.prompts} requests {mode}to {model}")
            t0 = time.perf_counter()
            if cfg.request_rate:
                samples = await _open(client, work, c, cfg.request_rate, rng, flight)
            else:
                samples = await _closed(client, work, c, flight)
            levels.append(summarise(samples, c, cfg.request_rate, time.perf_counter() - t0,
                                    flight.peak, cfg.slo))
            if (note := whole_streams(c, samples)) is not None:
                warnings.append(note)
                ui.warn(note)
    finally:
        await client.http.close()
    conf = {"concurrency": list(cfg.concurrency), "request_rate": cfg.request_rate,
            "prompts": cfg.prompts, "input_len": str(cfg.input_len),
            "output_len": str(cfg.output_len), "warmup": cfg.warmup, "slo": cfg.slo,
            "seed": cfg.seed, "ignore_eos": cfg.ignore_eos and client.extras, "settle_s": cfg.settle_s,
            "prompt_unit": "tokens" if prompts.pool else "words",
            "timeout_s": cfg.timeout_s}
    return ServeResult(url=cfg.url, model=model, config=conf, levels=levels, warnings=warnings)


def run(cfg: ServeConfig, ui: UI) -> ServeResult:
    """Warm up, then drive every concurrency level of cfg against its server; the figures."""
    return asyncio.run(_run(cfg, ui))
