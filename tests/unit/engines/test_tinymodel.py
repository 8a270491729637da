"""The tiny Llama the lab serves: a real Hugging Face model folder, the same bytes for the same
seed, a tokenizer that round-trips any text, a chat template, and a cache that builds once
and never shows a half-built folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factoryctl.engines.lab import LabError
from factoryctl.engines.lab import tinymodel as tm
from factoryctl.engines.lab.tinymodel import (
    FILES,
    MARKER,
    TinyLlama,
    build_tiny_model,
    cached_tiny_model,
    describe,
)
from tests.helpers import ROOT, cli

CONVERSATION = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": "How many racks?"},
    {"role": "assistant", "content": "Two."},
    {"role": "user", "content": "And GPUs?"},
]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def hf(model: Path):
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model)
    lm = transformers.AutoModelForCausalLM.from_pretrained(model)
    return tok, lm


def _bytes(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n, _ in describe(folder)}


def test_the_folder_holds_the_hugging_face_files_with_the_asked_shape(model: Path) -> None:
    assert sorted(n for n, _ in describe(model)) == sorted(FILES)
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["head_dim"]) == (2, 128, 2, 64)
    assert cfg["max_position_embeddings"] == 2048
    tok = json.loads((model / "tokenizer.json").read_text())
    assert len(tok["model"]["vocab"]) + len(tok["added_tokens"]) - 4 == cfg["vocab_size"] == 384
    special = json.loads((model / "special_tokens_map.json").read_text())
    assert special == {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    assert "chat_template" in json.loads((model / "tokenizer_config.json").read_text())


def test_transformers_loads_it_and_greedy_generation_is_deterministic(hf) -> None:
    import torch

    tok, lm = hf
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.dtype == torch.float32
    ids = tok.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_tensors="pt")["input_ids"]
    runs = [lm.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False) for _ in range(2)]
    assert runs[0].shape[1] == ids.shape[1] + 16
    assert torch.equal(runs[0], runs[1])
    new = runs[0][0, ids.shape[1]:].tolist()
    assert len(set(new)) > 3  # context moves the output: not one token repeated
    # Greedy margins far above float rounding, so another engine picks the same tokens.
    with torch.no_grad():
        top2 = torch.topk(lm(ids).logits[0, -1], 2).values
    assert float(top2[0] - top2[1]) > 1e-3


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path, model: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    assert _bytes(again) == _bytes(model)
    other = _bytes(build_tiny_model(tmp_path / "other", seed=1))
    assert other["model.safetensors"] != _bytes(model)["model.safetensors"]
    assert other["tokenizer.json"] == _bytes(model)["tokenizer.json"]  # the seed is the weights'


def test_the_chat_template_renders_system_user_and_assistant_turns(hf) -> None:
    tok, _ = hf
    text = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<s><|system|>\nAnswer in one line.</s>\n<|user|>\nHow many racks?</s>\n"
        "<|assistant|>\nTwo.</s>\n<|user|>\nAnd GPUs?</s>\n<|assistant|>\n"
    )
    ids = tok.apply_chat_template(CONVERSATION, tokenize=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert ids.count(tok.eos_token_id) == len(CONVERSATION)
    with pytest.raises(Exception, match="roles are system, user and assistant"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_the_tokenizer_round_trips_any_text(model: Path, text: str) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    enc = tok.encode(text)
    assert enc.ids[0] == 1 and 0 not in enc.ids  # <s> first; byte-level: no <unk> ever
    assert tok.decode(enc.ids, skip_special_tokens=True) == text


def test_bad_shape_and_occupied_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="num_heads x head_size = 32, hidden_size = 128"):
        build_tiny_model(tmp_path / "a", shape=TinyLlama(head_size=16))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(LabError, match="not an empty folder: give a new or empty folder"):
        build_tiny_model(tmp_path / "b")


def test_the_cache_builds_once(tmp_path: Path, monkeypatch) -> None:
    first = cached_tiny_model(tmp_path)
    assert first.parent == tmp_path and (first / MARKER).is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    def no_build(*_a, **_k):
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(tm, "build_tiny_model", no_build)
    assert cached_tiny_model(tmp_path) == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps


def test_concurrent_callers_share_one_build(tmp_path: Path, monkeypatch) -> None:
    builds = []
    real = tm.build_tiny_model

    def counted(*a, **k):
        builds.append(1)
        return real(*a, **k)

    monkeypatch.setattr(tm, "build_tiny_model", counted)
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(cached_tiny_model(tmp_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(got)) == 1 and len(got) == 4


KILLED_MID_BUILD = """
import os, signal, sys
from pathlib import Path
from factoryctl.engines.lab import tinymodel as tm
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)  # after the tokenizer, before the weights
tm._weights = die
tm.cached_tiny_model(Path(sys.argv[1]))
"""


def test_a_killed_build_leaves_no_half_folder_in_the_cache(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_BUILD, str(tmp_path)], env=env, timeout=60)
    assert proc.returncode == -9
    assert not list(tmp_path.glob("model-*"))
    (half,) = tmp_path.glob(".model-build-*")  # what it left is out of the way...
    assert (half / "tokenizer.json").is_file() and not (half / "model.safetensors").exists()
    folder = cached_tiny_model(tmp_path)  # ...and the next build clears it
    assert not list(tmp_path.glob(".model-build-*"))
    assert sorted(n for n, _ in describe(folder)) == sorted(FILES)


def test_cli_lab_model_prints_the_folder_and_its_files(tmp_path: Path) -> None:
    res = cli("lab", "model", "--out", tmp_path / "m")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == str(tmp_path / "m")
    assert any(line.split()[0] == "model.safetensors" and "bytes" in line for line in lines[1:])
    res = cli("lab", "model", "--out", tmp_path / "m")
    assert res.code == 1 and "not an empty folder" in res.err and "Traceback" not in res.err
