"""The ceiling of `factoryctl bench serve`'s load generator: how many requests and output
tokens per second it can drive when the server costs nothing.

A trivial OpenAI-style streaming endpoint runs on 127.0.0.1 in a child process (asyncio, HTTP/1.1
keep-alive, chunked transfer): it answers each `POST /v1/completions` with `max_tokens`
SSE chunks of one token each, a usage chunk and `data: [DONE]`, with no delay. The generator
(factoryctl.bench.serve, the same code the command runs) drives it at each concurrency level;
the table prints what it reached. The server runs in its own process so that the figures are
the generator's (on a 2-core machine the two processes share the cores, as a generator and a
CPU vLLM server would).

    python benchmarks/serve_ceiling.py [--concurrency 1,2,4,8,16,32,64] [--prompts 256]
        [--output-len 64] [--split]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import time

from factoryctl.bench import serve
from factoryctl.ui import RecordingUI


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


TOKEN = _chunk(b'data: {"id":"c","object":"text_completion","model":"m","choices":'
               b'[{"index":0,"text":" tok","logprobs":null,"finish_reason":null}]}\n\n')
SPLIT = False  # --split: one write per token
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n")


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # No Nagle, as uvicorn's sockets (vLLM's server) have it: asyncio sets TCP_NODELAY only on
    # sockets made with proto IPPROTO_TCP, and the listening socket here was made with proto 0.
    # Without it, each token after the headers waited for the client's delayed ACK (~40 ms).
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length)) if length else {}
            n = int(body.get("max_tokens", 16))
            usage = json.dumps({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n,
                                                         "total_tokens": n + 8}}).encode()
            if SPLIT:
                # One write and one turn of the loop per token, as a server decoding token by
                # token sends them: the client then reads about one chunk per socket read.
                writer.write(HEAD)
                for _ in range(n):
                    writer.write(TOKEN)
                    await writer.drain()
                    await asyncio.sleep(0)
                writer.write(_chunk(b"data: " + usage + b"\n\n") + _chunk(b"data: [DONE]\n\n")
                             + b"0\r\n\r\n")
            else:
                writer.write(HEAD + TOKEN * n + _chunk(b"data: " + usage + b"\n\n")
                             + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(sock: socket.socket, split: bool) -> None:
    global SPLIT
    SPLIT = split

    async def main() -> None:
        server = await asyncio.start_server(_handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    ap.add_argument("--prompts", type=int, default=256, help="requests per level")
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--split", action="store_true",
                    help="the server writes each token on its own (default: one write per response)")
    args = ap.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    proc = multiprocessing.get_context("fork").Process(target=_serve, args=(sock, args.split), daemon=True)
    proc.start()
    try:
        cfg = serve.ServeConfig(url=serve.completions_url(f"http://127.0.0.1:{port}"), model="m",
                                concurrency=serve.parse_concurrency(args.concurrency),
                                prompts=args.prompts, input_len=serve.Span(32, 32),
                                output_len=serve.Span(args.output_len, args.output_len), warmup=8,
                                settle_s=0.0)  # a no-delay server has nothing to settle
        t0 = time.perf_counter()
        res = serve.run(cfg, RecordingUI())
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.join()
    how = "one write per token" if args.split else "one write per response"
    print(f"generator ceiling: {args.prompts} requests of {args.output_len} streamed tokens per "
          f"level, server with no delay ({how}) on 127.0.0.1 (total {wall:.1f} s)\n")
    print("| concurrency | requests/s | output tokens/s | TTFT p50 ms | ITL p99 ms | E2E p50 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for lv in res.levels:
        print(f"| {lv.concurrency} | {lv.req_per_s:,.0f} | {lv.output_tok_per_s:,.0f} | "
              f"{lv.ttft_ms.p50:.2f} | {lv.itl_ms.p99:.3f} | {lv.e2e_ms.p50:.2f} | {lv.errors} |")


if __name__ == "__main__":
    main()
