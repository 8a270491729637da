"""`factoryctl bench ...`: read benchmark outputs (nccl-tests logs and -J JSON reports)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..bench.nccl_parse import Half, NcclResult, parse_file
from ..errors import ExitCode, UsageProblem
from ..files import ReadRefused
from .app import app as root_app
from .app import err, out
from .console import ConsoleUI

app = typer.Typer(help="Parse and summarise benchmark outputs (nccl-tests / rccl-tests).",
                  no_args_is_help=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _group() -> None:
    """Benchmark tools."""  # keeps `parse` a sub-command even while it is the only one


def _fmt(val: float | int | None) -> str:
    # Six significant digits reproduces what nccl-tests printed (80646.8, 17.49, 233).
    if val is None:
        return "N/A"
    return str(val) if isinstance(val, int) else f"{val:.6g}"


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def _half_cells(half: Half | None) -> list[str]:
    if half is None:
        return ["-"] * 4
    return [_fmt(half.time_us), _fmt(half.algbw_gbps), _fmt(half.busbw_gbps), _fmt(half.wrong)]


def _render(console: Console, res: NcclResult) -> None:
    colour = "green" if res.status == "ok" else "red"
    console.print(f"[bold]{escape(res.source)}[/bold]: collective={res.collective or '?'} "
                  f"ranks={res.ranks if res.ranks is not None else '?'} rows={len(res.rows)} "
                  f"status=[{colour}]{res.status}[/{colour}]")
    if res.rows:
        table = Table(show_edge=False, pad_edge=False)
        for name in ("size", "count", "type", "redop", "root"):
            table.add_column("size (B)" if name == "size" else name, justify="right" if name in ("size", "count", "root") else "left")
        for side in ("oop", "ip"):
            for name in ("time_us", "algbw", "busbw", "wrong"):
                table.add_column(f"{side} {name}", justify="right")
        for row in res.rows:
            table.add_row(str(row.size_bytes), str(row.count), row.type or "-",
                          row.redop or "-", "-" if row.root is None else str(row.root),
                          *_half_cells(row.out_of_place), *_half_cells(row.in_place))
        console.print(table)
    if res.largest is not None:
        console.print(f"avg busbw: {_fmt(res.avg_busbw_gbps)} GB/s   largest size "
                      f"{_human(res.largest.size_bytes)} busbw: {_fmt(res.peak_busbw_gbps)} GB/s")
    if res.out_of_bounds:
        console.print(f"[red]out of bounds values: {res.out_of_bounds}[/red]")
    if res.avg_busbw_check == "FAILED":
        console.print("[red]average bus bandwidth below NCCL_TESTS_MIN_BW[/red]")
    for line in res.errors[:10]:
        console.print(f"[red]error:[/red] {escape(line)}")
    if len(res.errors) > 10:
        console.print(f"... {len(res.errors) - 10} more error lines")
    for note in res.notes:
        console.print(f"note: {escape(note)}")


def _failed(res: NcclResult) -> bool:
    # The run's own MIN_BW check failing is a failed run too, though not a parse status.
    return res.status != "ok" or res.avg_busbw_check == "FAILED"


@app.command("parse")
def parse_cmd(
    logs: list[Path] = typer.Argument(..., metavar="LOG", help="nccl-tests stdout logs or -J JSON files."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text table or JSON list."),
) -> None:
    """Parse nccl-tests outputs; exit 1 on data errors, a crash, no rows or an unreadable file."""
    results: list[NcclResult] = []
    bad = False
    for path in logs:
        try:
            results.append(parse_file(path))
        except ReadRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            bad = True
    if fmt is OutputFormat.json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        console = _console()
        for res in results:
            _render(console, res)
    if bad or any(_failed(r) for r in results):
        raise typer.Exit(ExitCode.FAILED)


# --- expectations, judging and the built-in benchmark -----------------------------------------

_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def _console() -> Console:
    # The shared stdout console: whole tables when piped (app.WholeConsole), not a fixed 200.
    return out


def _factory(file: Path, refusal: str):
    """(factory, contexts) of FILE; InputRefused (findings, then `refusal`) when validate
    reports errors."""
    from ..bench.expect import contexts
    from ..session import check, refuse_on_errors

    c = refuse_on_errors(check(file), refusal)
    return c.factory, contexts(c.factory, c.site)


@app.command("expect")
def expect_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="factory.yaml"),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text table or JSON."),
) -> None:
    """What a healthy factory should measure: NCCL busbw per collective on one node and on all
    nodes of each GPU group, GEMM TFLOPS, memory and host<->device copy GB/s, each with its source."""
    from ..bench.expect import expectations

    factory, ctxs = _factory(file, "nothing expected")
    groups = [{"group": c.group, "gpu": c.gpu.name, "gpus_per_node": c.gpus_per_node, "nodes": c.nodes,
               "nic_ports": c.nic_ports, "port_gbps": c.port_gbps, "fabric": c.fabric,
               "expectations": [e.to_dict() for e in expectations(c)]} for c in ctxs]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"factory": factory.metadata.name, "groups": groups,
                               "thresholds": factory.verify.thresholds.model_dump()}, indent=2))
        return
    console = _console()
    if not groups:
        console.print("no GPU node group with a GPU the catalog knows: nothing to expect")
    for g in groups:
        console.print(f"[bold]{g['group']}[/bold]: {g['nodes']} x {g['gpus_per_node']} {g['gpu']}, "
                      f"{g['nic_ports']} x {g['port_gbps']}G {g['fabric'] or 'no compute fabric'}")
        table = Table(show_edge=False, pad_edge=False)
        for col in ("figure", "scope", "expected", "basis", "source"):
            table.add_column(col, justify="right" if col == "expected" else "left",
                             overflow="fold")
        for e in g["expectations"]:
            val = "-" if e["value"] is None else f"{e['value']:g} {e['unit']}"
            table.add_row(e["name"], e["scope"], val, e["basis"], escape(e["source"]))
        console.print(table)


def _judge_file(path: Path, ctxs, th):
    from ..bench import fallback, localise
    from ..bench.judge import Measurement, judge_fallback, judge_nccl
    from ..bench.nccl_parse import MAX_LOG_BYTES, parse_json, parse_text
    from ..files import read_text

    try:
        text = read_text(path, MAX_LOG_BYTES)
    except ReadRefused as exc:
        return "unreadable", [Measurement(name="read", value=None, unit="", verdict="fail",
                                          result=str(path), reason=str(exc))]
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            return "json", [Measurement(name="read", value=None, unit="", verdict="fail",
                                        result=str(path), reason=f"not valid JSON: {exc}")]
        if fallback.is_fallback(data):
            try:
                doc = fallback.load(data, source=str(path))
            except ValueError as exc:
                return "fallback", [Measurement(name="read", value=None, unit="", verdict="fail",
                                                result=str(path), reason=str(exc))]
            return "fallback", judge_fallback(doc, ctxs, th)
        return "nccl-tests", judge_nccl(parse_json(data, source=str(path)), ctxs, th)
    if localise.MARK.search(text):
        return "localisation", localise.judge_log(text, ctxs, th, source=str(path))
    return "nccl-tests", judge_nccl(parse_text(text, source=str(path)), ctxs, th)


def _print_judged(console: Console, judged: list[tuple[str, str, list]]) -> None:
    from ..bench.judge import worst

    for source, kind, ms in judged:
        v = worst(ms)
        console.print(f"[bold]{escape(source)}[/bold] ({kind}): [{_COLOURS[v]}]{v}[/{_COLOURS[v]}]")
        table = Table(show_edge=False, pad_edge=False)
        for col in ("figure", "measured", "expected", "fraction", "verdict", "reason"):
            table.add_column(col, justify="right" if col in ("measured", "expected", "fraction") else "left",
                             overflow="fold")
        for m in ms:
            c = _COLOURS[m.verdict]
            table.add_row(m.name, "-" if m.value is None else f"{m.value:.4g} {m.unit}",
                          "-" if m.expected is None else f"{m.expected:g}",
                          "-" if m.fraction is None else f"{m.fraction:.0%}",
                          f"[{c}]{m.verdict}[/{c}]", escape(m.reason))
        console.print(table)
    counts = {v: sum(m.verdict == v for _, _, ms in judged for m in ms) for v in _COLOURS}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()))


def _emit_judged(judged, fmt: OutputFormat, extra: dict | None = None) -> bool:
    """Print judged results; True when anything failed."""
    from ..bench.judge import worst

    every = [m for _, _, ms in judged for m in ms]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps((extra or {}) | {
            "verdict": worst(every),
            "results": [{"result": s, "kind": k, "verdict": worst(ms),
                         "measurements": [m.to_dict() for m in ms]} for s, k, ms in judged]},
            indent=2))
    else:
        _print_judged(_console(), judged)
    return any(m.verdict == "fail" for m in every)


@app.command("judge")
def judge_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="factory.yaml"),
    results: list[Path] = typer.Argument(..., metavar="RESULT...",
                                         help="nccl-tests logs or -J JSON, built-in benchmark JSON, localisation logs."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text table or JSON."),
) -> None:
    """Judge results against FILE's expectations and verify.thresholds; exit 1 on any fail.

    Bandwidth is judged at the largest size of at least 1 GiB; wrong data or a crash fails
    whatever the numbers."""
    factory, ctxs = _factory(file, "nothing judged")
    th = factory.verify.thresholds
    judged = [(str(p), *_judge_file(p, ctxs, th)) for p in results]
    if _emit_judged(judged, fmt):
        raise typer.Exit(ExitCode.FAILED)


def _local_gpus() -> int:
    """GPUs this process may use, counted by torch in a child (torch.cuda.device_count() honours
    CUDA_VISIBLE_DEVICES; nvidia-smi -L lists every GPU of the machine)."""
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                             capture_output=True, text=True, timeout=120, check=False)
        return max(1, int(out.stdout.strip() or 0))
    except (OSError, subprocess.SubprocessError, ValueError):
        return 1


class Mode(StrEnum):
    cpu = "cpu"
    gpu = "gpu"


@app.command("run-local")
def run_local_cmd(
    mode: Mode = typer.Option(Mode.cpu, "--mode", help="cpu: gloo on CPU tensors (lab); gpu: NCCL, one rank per GPU."),
    world_size: int | None = typer.Option(None, "--world-size", "-n", min=1,
                                          help="Ranks to start (cpu: 2; gpu: every GPU torch sees, CUDA_VISIBLE_DEVICES honoured)."),
    tests: str | None = typer.Option(None, "--tests", help="Comma list of gemm, hbm, host, all_reduce."),
    dtypes: str | None = typer.Option(None, "--dtypes", help="GEMM dtypes (gpu: bf16,fp16,fp8; cpu: fp32)."),
    min_bytes: str | None = typer.Option(None, "--min-bytes", help="all_reduce sweep start (gpu 1M, cpu 32K)."),
    max_bytes: str | None = typer.Option(None, "--max-bytes", help="all_reduce sweep end (gpu 4G, cpu 16M)."),
    iters: int | None = typer.Option(None, "--iters", min=1, help="Timed iterations (20)."),
    gemm_seconds: float | None = typer.Option(None, "--gemm-seconds", min=0,
                                              help="Sustain each GEMM this long, sampling SM clocks and throttle reasons (gpu 10, cpu 0)."),
    factory: Path | None = typer.Option(None, "--factory", exists=True, dir_okay=False,
                                        help="Judge against this factory.yaml (default: the catalog entry of the GPU found)."),
    out: Path | None = typer.Option(None, "--out", help="Also write the result JSON here."),
    timeout: int = typer.Option(900, "--timeout", min=10, help="Seconds before every rank is stopped."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text or JSON."),
) -> None:
    """Run the built-in benchmark on this machine (no nccl-tests needed) and judge it.

    Starts one worker process per rank with the torchrun environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); exit 1 when a rank fails or a figure fails its threshold."""
    from ..bench import expect, fallback
    from ..bench.judge import judge_fallback
    from ..model.verify import Thresholds

    if not fallback.torch_available():
        typer.echo("error: PyTorch is not installed; the built-in benchmark needs it: "
                   "pip install 'factoryctl[bench]'", err=True)
        raise typer.Exit(ExitCode.FAILED)
    n = world_size or (2 if mode is Mode.cpu else _local_gpus())
    args = [f"--{k.replace('_', '-')}={v}" for k, v in (("tests", tests), ("dtypes", dtypes),
            ("min_bytes", min_bytes), ("max_bytes", max_bytes), ("iters", iters),
            ("gemm_seconds", gemm_seconds)) if v is not None]
    run = fallback.run_local(mode.value, n, args, timeout=timeout)
    if run.stderr:
        typer.echo(run.stderr, err=True)
    if run.result is None:
        typer.echo(f"error: the benchmark produced no result (exit {run.returncode})", err=True)
        raise typer.Exit(ExitCode.FAILED)
    doc = run.result
    if out is not None:
        out.write_text(json.dumps(doc.to_dict(), indent=2) + "\n", encoding="utf-8")
    if factory is not None:
        fac, ctxs = _factory(factory)
        th = fac.verify.thresholds
    else:
        found = expect.for_gpu(doc.device_name, gpus_per_node=doc.world_size // max(1, doc.nodes))
        ctxs, th = ([found] if found else []), Thresholds()
    judged = [(doc.source, "fallback", judge_fallback(doc, ctxs, th))]
    extra = {"run": doc.to_dict()} if fmt is OutputFormat.json else None
    if fmt is OutputFormat.text:
        v = doc.versions
        _console().print(f"{doc.mode} run: {doc.world_size} ranks ({doc.backend}) on {', '.join(doc.hosts)}; "
                         + ", ".join(f"{k} {v[k]}" for k in ("torch", "cuda", "nccl", "driver") if v.get(k)))
    failed = _emit_judged(judged, fmt, extra)
    if failed or run.returncode != 0:
        raise typer.Exit(ExitCode.FAILED)


@app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="factory.yaml"),
    connection: str = typer.Option("ssh", "--connection", "-c", help="ssh (through the inventory) or local."),
    ssh_config: Path | None = typer.Option(None, "--ssh-config", exists=True, dir_okay=False,
                                           help="ssh_config for reaching the hosts."),
    local_name: str | None = typer.Option(None, "--local-name", help="With --connection local: this machine's host name."),
    partition: str | None = typer.Option(None, "--partition", help="Slurm partition (default: the default one)."),
    nodes: int | None = typer.Option(None, "--nodes", min=1, help="Nodes to run on (default: the whole partition)."),
    timeout: int = typer.Option(900, "--timeout", min=30, help="Seconds for each job step."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text or JSON."),
) -> None:
    """Run only the benchmark stage through the site's scheduler (srun): nccl-tests where the
    nodes have them, else the built-in worker (the CPU path on nodes without GPUs), judge it
    and write .factory/<name>/runs/<id>/bench.json. Exit 1 on a failed figure or run."""
    from ..session import open_site
    from ..verify.hostchecks import HostCheckOptions, run_bench
    from .verify import progress_ui, show

    if connection not in ("ssh", "local"):
        raise typer.BadParameter("--connection must be ssh or local")
    opts = HostCheckOptions(connection, ssh_config, local_name, partition=partition, nodes=nodes, timeout=timeout)
    with open_site(file, "nothing verified") as s:
        res = run_bench(s.checked, s.workspace, opts, progress_ui(fmt.value))
    show(res, fmt.value, _console())
    raise typer.Exit(res.exit_code)


def _ms(s) -> str:
    return "-" if s is None else f"{s:.1f}"


def _serve_table(res) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for col in ("conc", "rate", "reqs", "err", "req/s", "out tok/s", "TTFT mean", "TTFT p99",
                "TPOT mean", "TPOT p99", "ITL p50", "ITL p99", "E2E p50", "E2E p99", "goodput"):
        table.add_column(col, justify="right")
    for lv in res.levels:
        good = "-" if not lv.goodput.slo else f"{lv.goodput.share:.0%}"
        colour = "red" if lv.errors or not lv.goodput.met else "green"
        table.add_row(str(lv.concurrency), f"{lv.request_rate:g}" if lv.request_rate else "-",
                      str(lv.requests), f"[{colour}]{lv.errors}[/{colour}]", f"{lv.req_per_s:.2f}",
                      f"{lv.output_tok_per_s:.0f}", _ms(lv.ttft_ms.mean), _ms(lv.ttft_ms.p99),
                      _ms(lv.tpot_ms.mean), _ms(lv.tpot_ms.p99), _ms(lv.itl_ms.p50),
                      _ms(lv.itl_ms.p99), _ms(lv.e2e_ms.p50), _ms(lv.e2e_ms.p99),
                      f"[{colour}]{good}[/{colour}]")
    return table


def _show_serve(res, ui) -> None:
    ui.show(f"[bold]{escape(res.model)}[/bold] at {escape(res.url)} (times in ms)")
    ui.show(_serve_table(res))
    for lv in res.levels:
        for miss in lv.goodput.missed:
            ui.error(f"concurrency {lv.concurrency}: SLO missed: {miss}")
        for text in lv.error_samples:
            ui.error(f"concurrency {lv.concurrency}: {text}")


def _serve_site(file: Path | None, deployment: str | None):
    """(factory file, deployment name, site name) to record a serve run in, or None without
    --file; UsageProblem naming the fix when --deployment is missing or names no deployment."""
    if file is None:
        if deployment is not None:
            raise UsageProblem("--deployment names a deployment of a factory file: give the file with --file FILE")
        return None
    from ..session import check, refuse_on_errors

    c = refuse_on_errors(check(file), "nothing measured")
    names = [inf.name for inf in c.factory.inference]
    if not names:
        raise UsageProblem(f"{file}: declares no inference deployments; add one under inference: to record a serve run")
    if deployment is None:
        if len(names) > 1:
            raise UsageProblem(f"{file} has several inference deployments ({', '.join(names)}): choose one with --deployment NAME")
        deployment = names[0]
    elif deployment not in names:
        raise UsageProblem(f"--deployment {deployment}: {file} has no such inference deployment; "
                           f"it declares {', '.join(names)}")
    return file, deployment, c.factory.metadata.name


def _record_serve(res, file: Path, deployment: str, name: str) -> Path:
    """runs/<id>/serve.json in the site's workspace, through the one run-folder writer."""
    from datetime import UTC, datetime

    from ..verify.results import write_serve_run
    from ..workspace import Workspace

    folder = Workspace.beside(file, name).new_run("serve")
    return write_serve_run(res, deployment, folder, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


@app.command("serve")
def serve_cmd(
    url: str = typer.Argument(..., metavar="URL", help="The server's base URL (http://HOST:PORT; .../v1 or .../v1/completions work too)."),
    model: str | None = typer.Option(None, "--model", help="Model name (default: the first /v1/models lists)."),
    concurrency: str = typer.Option("1,2,4,8", "--concurrency", help="Levels to sweep: requests in flight (the cap with --request-rate)."),
    request_rate: float | None = typer.Option(None, "--request-rate", min=0.001, help="Open loop: Poisson arrivals per second (default: closed loop)."),
    prompts: int = typer.Option(64, "--prompts", min=1, help="Requests per level."),
    input_len: str = typer.Option("128", "--input-len", help="Prompt words (about one token each): N or LOW-HIGH."),
    output_len: str = typer.Option("128", "--output-len", help="max_tokens (with ignore_eos): N or LOW-HIGH."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Warm-up requests before the first level."),
    settle: float = typer.Option(2.0, "--settle", min=0, help="Seconds of quiet before each level, so each starts from an idle server."),
    slo: str | None = typer.Option(None, "--slo", help="Limits in ms, e.g. ttft_p99_ms=500,tpot_p99_ms=50 (METRIC ttft|tpot|itl|e2e, STAT mean|p50|p90|p99)."),
    timeout: float = typer.Option(300.0, "--timeout", min=0.1, help="Seconds one request may take."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prompts, lengths and arrivals."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text table or JSON (factoryctl.serve/v1)."),
    out_file: Path | None = typer.Option(None, "--out", help="Also write the JSON here."),
    file: Path | None = typer.Option(None, "--file", dir_okay=False,
                                     help="factory.yaml: record the result as a run in its workspace (runs/<id>/serve.json), which cost and report read."),
    deployment: str | None = typer.Option(None, "--deployment",
                                          help="With --file: the inference[].name this server is (default: the file's only deployment)."),
) -> None:
    """Load-test an OpenAI-compatible server (vLLM...): streamed /v1/completions at each
    concurrency level; TTFT, TPOT, ITL, E2E, throughput and goodput. Exit 1 when an SLO is
    missed or every request of a level failed.

    With --file, the result is recorded as a run of that site for the deployment it measured:
    `cost` and `report` then use its output tokens/s at the highest concurrency in place of
    the stated inference[].tokens_per_second.

    Example: factoryctl bench serve http://127.0.0.1:8000 --concurrency 1,8,32 --input-len 32 --output-len 64 --slo ttft_p99_ms=500,tpot_p99_ms=50"""
    from ..bench import serve
    from .verify import progress_ui

    cfg = serve.ServeConfig(
        url=serve.completions_url(url), model=model, concurrency=serve.parse_concurrency(concurrency),
        request_rate=request_rate, prompts=prompts, input_len=serve.parse_span("--input-len", input_len),
        output_len=serve.parse_span("--output-len", output_len), warmup=warmup,
        slo=serve.parse_slo(slo), timeout_s=timeout, seed=seed, settle_s=settle)
    if out_file is not None and not out_file.parent.is_dir():  # found before the run, not after
        raise UsageProblem(f"--out {out_file}: folder {out_file.parent} does not exist; create it first")
    site = _serve_site(file, deployment)  # refused before the run, not after it
    res = serve.run(cfg, progress_ui(fmt.value))
    doc = json.dumps(res.to_dict(), indent=2) + "\n"
    if site is not None:
        recorded = _record_serve(res, *site)
        err.print(f"recorded as run {recorded.parent.name} of {site[2]}: {escape(str(recorded))}", highlight=False)
    if out_file is not None:
        out_file.write_text(doc, encoding="utf-8")
    if fmt is OutputFormat.json:
        typer.echo(doc, nl=False)
    else:
        _show_serve(res, ConsoleUI(_console(), err))
    if res.failed:
        raise typer.Exit(ExitCode.FAILED)


root_app.add_typer(app, name="bench", help="Benchmarks: parse nccl-tests logs, expectations, judge results, run the built-in fallback, load-test a serving endpoint.")
