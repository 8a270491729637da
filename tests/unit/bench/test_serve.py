"""bench serve against a fake OpenAI streaming server on 127.0.0.1 whose delays the test sets:
the timings measured, concurrency kept, errors counted with their text, SLOs and goodput, the
JSON document and the command's usage errors."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from factoryctl.bench import serve
from factoryctl.errors import UsageProblem
from factoryctl.ui import RecordingUI
from tests.helpers import cli


@dataclass
class Behaviour:
    ttft: float = 0.0  # seconds before the first token
    gap: float = 0.0  # seconds between tokens
    mode: str = "ok"  # ok | http500 | broken | no_usage | refuse_extras
    models: tuple[str, ...] = ("tiny-llama",)
    tokenize: bool = False  # answer vLLM's POST /tokenize (else 404, as a plain OpenAI server)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj) -> bytes:
    return _chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


class FakeServer:
    """A streaming /v1/completions on its own event loop thread; counts requests in flight."""

    def __init__(self, behaviour: Behaviour):
        self.b = behaviour
        self.in_flight = self.max_in_flight = 0
        self.bodies: list[dict] = []
        self.arrived: list[float] = []  # time.monotonic() of each completion request
        self.tokenized: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, sock=self.sock))
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> FakeServer:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self) -> None:
        # Handlers still streaming are cancelled and awaited, not left for the GC.
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader, writer) -> None:
        # TCP_NODELAY, as uvicorn's sockets have it: asyncio sets it only on sockets made with
        # proto IPPROTO_TCP, and without it each token waits for the client's delayed ACK.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                if head.startswith(b"POST /tokenize"):
                    self.tokenized.append(body)
                    # a stand-in tokenizer: one id per character of the prompt
                    payload = (json.dumps({"count": len(body["prompt"]), "tokens": [ord(c) % 97 for c in body["prompt"]]})
                               if self.b.tokenize else '{"detail": "Not Found"}').encode()
                    status = b"200 OK" if self.b.tokenize else b"404 Not Found"
                    writer.write(b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (status, len(payload), payload))
                    await writer.drain()
                    continue
                if head.startswith(b"GET /v1/models"):
                    payload = json.dumps({"data": [{"id": m} for m in self.b.models]}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(payload), payload))
                    await writer.drain()
                    continue
                self.bodies.append(body)
                self.arrived.append(time.monotonic())
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if not await self._complete(body, writer):
                        return
                finally:
                    self.in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _complete(self, body: dict, writer) -> bool:
        """Answer one request; False when the connection is to be dropped."""
        if self.b.mode == "http500" or (self.b.mode == "refuse_extras" and "ignore_eos" in body):
            code, text = ((500, b"engine dead: CUDA error") if self.b.mode == "http500"
                          else (400, b"unknown parameter ignore_eos"))
            writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (code, len(text), text))
            await writer.drain()
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        n = int(body["max_tokens"])
        await asyncio.sleep(self.b.ttft)
        for i in range(n):
            if i:
                await asyncio.sleep(self.b.gap)
            writer.write(_event({"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}]}))
            await writer.drain()
            if self.b.mode == "broken" and i == 1:
                writer.transport.abort()  # the connection dies mid-stream
                return False
        if self.b.mode != "no_usage" and body.get("stream_options", {}).get("include_usage"):
            writer.write(_event({"choices": [], "usage": {"prompt_tokens": 17,
                                                          "completion_tokens": n, "total_tokens": n + 17}}))
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True


def cfg(url: str, **kw) -> serve.ServeConfig:
    base = {"model": "m", "concurrency": (1,), "prompts": 3, "input_len": serve.Span(8, 8),
            "output_len": serve.Span(6, 6), "warmup": 0, "timeout_s": 10.0, "settle_s": 0.0}
    return serve.ServeConfig(url=serve.completions_url(url), **(base | kw))


def test_timings_match_the_injected_delays():
    with FakeServer(Behaviour(ttft=0.08, gap=0.03)) as srv:
        res = serve.run(cfg(srv.url), RecordingUI())
    (lv,) = res.levels
    assert lv.requests == 3 and lv.errors == 0
    assert lv.output_tokens == 18 and lv.prompt_tokens_mean == 17  # from usage
    assert 80 <= lv.ttft_ms.mean < 80 + 40, lv.ttft_ms
    assert 30 <= lv.itl_ms.p50 < 30 + 20 and 25 <= lv.itl_ms.p99 < 30 + 40, lv.itl_ms
    assert 28 <= lv.tpot_ms.mean < 30 + 20, lv.tpot_ms  # (E2E - TTFT) / (6 - 1)
    assert 80 + 5 * 30 <= lv.e2e_ms.p50 < 80 + 5 * 30 + 80, lv.e2e_ms
    # The request carried what the module docstring says it sends.
    body = srv.bodies[-1]
    assert body["stream"] is True and body["max_tokens"] == 6 and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True} and body["model"] == "m"
    assert len(srv.bodies) == 1 + 3  # the probe, then the level


def test_closed_loop_keeps_c_in_flight():
    with FakeServer(Behaviour(ttft=0.02, gap=0.01)) as srv:
        res = serve.run(cfg(srv.url, concurrency=(3,), prompts=9), RecordingUI())
        assert srv.max_in_flight == 3
    assert res.levels[0].max_in_flight == 3 and res.levels[0].errors == 0


def test_open_loop_caps_in_flight_and_follows_the_rate():
    with FakeServer(Behaviour(ttft=0.1, gap=0.01)) as srv:
        res = serve.run(cfg(srv.url, concurrency=(2,), prompts=8, request_rate=200.0), RecordingUI())
        assert srv.max_in_flight == 2  # arrivals at 200/s pile up behind the cap of 2
    lv = res.levels[0]
    assert lv.request_rate == 200.0 and lv.errors == 0 and lv.max_in_flight == 2
    with FakeServer(Behaviour()) as srv:
        slow = serve.run(cfg(srv.url, concurrency=(8,), prompts=6, request_rate=20.0), RecordingUI())
    # Five exponential gaps at 20/s: about 0.25 s; a closed loop would take milliseconds.
    assert slow.levels[0].duration_s > 0.05


def test_http_500_is_counted_with_its_text_and_fails_the_command():
    with FakeServer(Behaviour(mode="http500")) as srv:
        res = serve.run(cfg(srv.url), RecordingUI())
        code = cli("bench", "serve", srv.url, "--model", "m", "--concurrency", "2", "--prompts", "2")
    lv = res.levels[0]
    assert lv.errors == 3 and lv.all_failed and res.failed
    assert lv.error_samples == ["3 x HTTP 500: engine dead: CUDA error"]
    assert code.code == 1 and "HTTP 500: engine dead" in code.err


def test_connection_refused_is_an_error_per_request():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    res = serve.run(cfg(f"http://127.0.0.1:{port}"), RecordingUI())
    assert res.levels[0].errors == 3 and res.failed
    assert "cannot connect to" in res.levels[0].error_samples[0]
    assert any("the first request failed" in w for w in res.warnings)


def test_a_broken_stream_is_an_error():
    with FakeServer(Behaviour(mode="broken")) as srv:
        res = serve.run(cfg(srv.url, prompts=2), RecordingUI())
    lv = res.levels[0]
    assert lv.errors == 2 and lv.ttft_ms.mean is None
    assert "after 2 chunks" in lv.error_samples[0], lv.error_samples


def test_a_request_past_its_deadline_is_an_error():
    # Each read is quick (a token every 50 ms); the whole request (about 0.3 s) is not.
    with FakeServer(Behaviour(ttft=0.05, gap=0.05)) as srv:
        res = serve.run(cfg(srv.url, prompts=2, timeout_s=0.15), RecordingUI())
    assert res.levels[0].errors == 2
    assert res.levels[0].error_samples[0].startswith("2 x timed out after 0.15 s")


def test_tokens_from_chunks_without_usage_and_a_server_refusing_the_extras():
    with FakeServer(Behaviour(mode="no_usage")) as srv:
        res = serve.run(cfg(srv.url), RecordingUI())
    assert res.levels[0].output_tokens == 18 and res.levels[0].prompt_tokens_mean is None
    with FakeServer(Behaviour(mode="refuse_extras")) as srv:
        ui = RecordingUI()
        res = serve.run(cfg(srv.url), ui)
        assert "ignore_eos" not in srv.bodies[-1]
    assert res.levels[0].errors == 0 and res.config["ignore_eos"] is False
    assert any("refused ignore_eos" in w for w in ui.messages("warn"))


def test_slo_goodput_and_exit_code(tmp_path):
    with FakeServer(Behaviour(ttft=0.05, gap=0.005)) as srv:
        tight = serve.run(cfg(srv.url, slo={"ttft_p99_ms": 10.0}), RecordingUI())
        loose = serve.run(cfg(srv.url, slo={"ttft_p99_ms": 2000.0, "tpot_mean_ms": 500.0}), RecordingUI())
        missed = cli("bench", "serve", srv.url, "--settle", "0", "--model", "m", "--concurrency", "1", "--prompts", "2",
                     "--output-len", "3", "--slo", "ttft_p99_ms=10")
        met = cli("bench", "serve", srv.url, "--settle", "0", "--model", "m", "--concurrency", "1,2", "--prompts", "2",
                  "--output-len", "3", "--slo", "ttft_p99_ms=2000")
    g = tight.levels[0].goodput
    assert not g.met and g.requests == 0 and g.share == 0.0 and tight.failed
    assert g.missed[0].startswith("ttft_p99_ms ") and g.missed[0].endswith(" > 10")
    g = loose.levels[0].goodput
    assert g.met and g.requests == 3 and g.share == 1.0 and g.req_per_s > 0 and not loose.failed
    assert missed.code == 1 and "SLO missed: ttft_p99_ms" in missed.err
    assert met.code == 0, met.output
    assert "TTFT mean" in met.out and "100%" in met.out


def test_json_document_and_model_discovery(tmp_path):
    out = tmp_path / "serve.json"
    with FakeServer(Behaviour(gap=0.001)) as srv:
        res = cli("bench", "serve", f"{srv.url}/v1", "--settle", "0", "--concurrency", "1,2", "--prompts", "4",
                  "--input-len", "4-9", "--output-len", "2-5", "--format", "json", "--out", out)
    assert res.code == 0, res.output
    doc = json.loads(res.out)
    assert doc == json.loads(out.read_text())
    assert doc["schema"] == "factoryctl.serve/v1" and doc["model"] == "tiny-llama"
    assert doc["url"].endswith("/v1/completions") and doc["config"]["input_len"] == "4-9"
    assert [lv["concurrency"] for lv in doc["levels"]] == [1, 2]
    for lv in doc["levels"]:
        for key in ("request_rate", "requests", "errors", "req_per_s", "output_tok_per_s", "goodput"):
            assert key in lv
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            assert set(lv[key]) == {"mean", "p50", "p90", "p99"}
        assert lv["requests"] == 4 and 8 <= lv["output_tokens"] <= 20


@pytest.mark.parametrize("args, words", [
    (["ftp://127.0.0.1:1"], "not an http(s) URL"),
    (["127.0.0.1:8000"], "not an http(s) URL"),
    (["http://:8000"], "not an http(s) URL"),
    (["http://127.0.0.1:99999"], "http://127.0.0.1:8000"),
    (["http://h", "--concurrency", "0,2"], "--concurrency '0,2'"),
    (["http://h", "--concurrency", "two"], "e.g. --concurrency 1,2,4,8"),
    (["http://h", "--input-len", "9-3"], "--input-len '9-3'"),
    (["http://h", "--output-len", "x"], "LOW-HIGH"),
    (["http://h", "--slo", "ttft_p95_ms=3"], "is not a known limit"),
    (["http://h", "--slo", "tpot_p99_ms=-1"], "not a positive number"),
    (["http://h", "--prompts", "0"], "--prompts"),
    (["http://h", "--out", "/nonexistent/dir/x.json"], "does not exist; create it first"),
])
def test_bad_url_or_option_is_a_usage_error(args, words):
    res = cli("bench", "serve", *args)
    assert res.code == 64 and words in res.err, res.output


def test_no_model_listed_is_a_clear_error():
    with FakeServer(Behaviour(models=())) as srv:
        res = cli("bench", "serve", srv.url)
    assert res.code == 1 and "lists no model; give --model NAME" in res.err


def test_parsers_and_percentiles():
    assert serve.completions_url("http://h:8000/") == "http://h:8000/v1/completions"
    assert serve.completions_url("http://h/x/v1/completions") == "http://h/x/v1/completions"
    assert serve.completions_url("http://u@[::1]:80/v1") == "http://u@[::1]:80/v1/completions"
    assert serve.parse_span("--input-len", "64-256") == serve.Span(64, 256)
    assert serve.parse_slo("ttft_p99_ms=500, tpot_p90_ms=50") == {"ttft_p99_ms": 500, "tpot_p90_ms": 50}
    with pytest.raises(UsageProblem):
        serve.parse_slo("ttft_p99_ms")
    data = [float(i) for i in range(1, 101)]
    assert serve.percentile(data, 50) == 50.5 and serve.percentile(data, 99) == pytest.approx(99.01)
    s = serve.Summary.of([0.001, 0.002, 0.003, 0.010])
    assert s.mean == pytest.approx(4.0) and s.p50 == pytest.approx(2.5)


def test_streams_that_arrive_whole_are_named_with_a_warning():
    # Tokens held 100 ms and sent together, as the lab's starved vLLM API server did.
    with FakeServer(Behaviour(ttft=0.1, gap=0.0)) as srv:
        res = serve.run(cfg(srv.url, concurrency=(2,), prompts=4, output_len=serve.Span(16, 16)), RecordingUI())
    (note,) = [w for w in res.warnings if "arrived whole" in w]
    assert note.startswith("concurrency 2: 4 of 4 streams arrived whole at their end"), note
    # Tokens streamed 2 ms apart: no warning.
    with FakeServer(Behaviour(ttft=0.005, gap=0.002)) as srv:
        res = serve.run(cfg(srv.url, concurrency=(2,), prompts=4, output_len=serve.Span(16, 16)), RecordingUI())
    assert not [w for w in res.warnings if "arrived whole" in w]


def test_each_level_starts_after_the_quiet_it_is_given():
    with FakeServer(Behaviour()) as srv:
        res = serve.run(cfg(srv.url, concurrency=(1, 2), prompts=2, warmup=1, settle_s=0.4), RecordingUI())
    assert [lv.errors for lv in res.levels] == [0, 0] and res.config["settle_s"] == 0.4
    # warm-up probe, level 1 (2 requests), level 2 (2 requests): quiet before each level
    probe, l1a, l1b, l2a, _ = srv.arrived
    assert l1a - probe >= 0.4 and l2a - l1b >= 0.4


def test_prompts_are_exact_token_lists_where_the_server_tokenizes():
    """Like `vllm bench serve`'s random dataset: --input-len counts tokens, sent as a token list."""
    with FakeServer(Behaviour(tokenize=True)) as srv:
        cfg = serve.ServeConfig(url=srv.url + "/v1/completions", concurrency=(2,), prompts=6,
                                input_len=serve.Span(32, 32), output_len=serve.Span(4, 4), warmup=0,
                                settle_s=0.0)
        res = serve.run(cfg, RecordingUI())
    assert len(srv.tokenized) == 1 and res.config["prompt_unit"] == "tokens" and not res.warnings
    assert all(isinstance(b["prompt"], list) and len(b["prompt"]) == 32 for b in srv.bodies)


def test_without_tokenize_prompts_are_words_with_a_warning():
    with FakeServer(Behaviour()) as srv:
        cfg = serve.ServeConfig(url=srv.url + "/v1/completions", concurrency=(1,), prompts=2,
                                input_len=serve.Span(8, 8), output_len=serve.Span(4, 4), warmup=0,
                                settle_s=0.0)
        res = serve.run(cfg, RecordingUI())
    assert res.config["prompt_unit"] == "words" and any("no /tokenize" in w for w in res.warnings)
    assert all(isinstance(b["prompt"], str) and len(b["prompt"].split()) == 8 for b in srv.bodies)
