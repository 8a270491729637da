"""The model the lab serves: a tiny Llama made here, with no model hub.

Random weights from a fixed seed, a byte-level BPE tokenizer trained on a few built-in
paragraphs, and a chat template, written in the Hugging Face folder layout that vLLM and
transformers load from a path (config.json, model.safetensors, generation_config.json,
tokenizer.json, tokenizer_config.json, special_tokens_map.json). Its output is gibberish;
its tokens, requests, latencies and metrics are real.

Only numpy, safetensors and tokenizers are needed to build it (no torch, no transformers):
a build takes well under a second. cached_tiny_model() builds it once per recipe into the
lab cache, beside the host image, the way rootfs.ensure_rootfs does: in a temporary folder,
renamed into place when complete, under a lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import LabError
from .rootfs import cache_dir, locked

# Bump when the files written change in a way the recipe below does not capture.
RECIPE = 2  # 2: SHA256SUMS beside the files
MARKER = ".factoryctl-model.json"
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
# sha256sum's output over FILES: what a host staging the folder over HTTP fetches first and
# checks every file against (the inference role's get_url with checksum).
SUMS = "SHA256SUMS"
# Ids 0-3, in this order (the trainer assigns special tokens first).
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
UNK, BOS, EOS, PAD = SPECIAL_TOKENS

# The training text: written for factoryctl, about what the lab does. Its only job is to give
# the BPE enough repeated pairs to learn a vocabulary of a few hundred tokens.
CORPUS = """\
A factory file describes the site: the racks, the power each rack may draw, the nodes in
every group, the fabric that joins them and the models the site will serve. The tool reads
the file, checks it like a compiler and then derives every fact the file implies.

The lab is a small site on one machine. Each host is a network namespace with its own
address, its own secure shell daemon and its own view of the file system. Terraform creates
the hosts, Ansible installs the packages, and the checks prove that the site runs.

An inference server loads a model, listens on a port and answers requests. A request sends
a prompt; the server splits the prompt into tokens, runs the model once for the whole prompt
and then once for every new token, and streams the tokens back as they are made. The time to
the first token, the time between tokens and the tokens per second tell how well it serves.

The model here is tiny and its weights are random, so the words it writes make no sense. The
tokens are real all the same: the server counts them, schedules them, caches them and reports
them in its metrics, and a load test measures them exactly as it would on a large model.

Power goes in, tokens come out. The cost of a token is the cost of the power, the cooling, the
hardware and the people, divided by the tokens the site makes while it runs. A site that
knows its tokens per second and its watts knows its joules per token and its price.
"""

# Roles rendered as plain text markers, each turn closed by the end-of-sequence token, so a
# generation stops at </s>. The bos token is written by the template; a server that applies
# the template tokenizes its output without adding special tokens again (vLLM does:
# docs.vllm.ai, "Chat Template"). Unknown roles fail loudly instead of being dropped.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles are system, user and assistant, not ' + message['role']) }}"
    "{% endif %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class TinyLlama:
    """The shape. head_dim 64: vLLM's CPU attention kernels support a fixed set of head sizes
    and refuse others at the first request ("Unsupported CPU attention configuration:
    head_dim=...", vllm-project/vllm issue #39065); 16 is refused, 64 is supported, and
    2 heads x 64 = hidden 128.
    The field names differ from factory.yaml's model_spec (layers, kv_heads, head_dim) on
    purpose: docsgen_fields counts code reading those attributes as readers of the file."""

    num_layers: int = 2
    hidden_size: int = 128
    num_heads: int = 2
    num_kv_heads: int = 2
    head_size: int = 64
    intermediate_size: int = 256
    vocab_size: int = 384  # 256 byte symbols + 4 special tokens + 124 learned merges
    max_positions: int = 2048
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6

    def check(self) -> None:
        if self.num_heads * self.head_size != self.hidden_size:
            raise LabError(
                f"tiny model: num_heads x head_size = {self.num_heads * self.head_size}, hidden_size = {self.hidden_size}",
                "choose num_heads and head_size whose product is hidden_size",
            )
        if self.num_heads % self.num_kv_heads:
            raise LabError(
                f"tiny model: {self.num_heads} attention heads do not split into {self.num_kv_heads} KV heads",
                "choose num_kv_heads that divides num_heads",
            )
        if self.vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
            raise LabError(
                f"tiny model: vocab {self.vocab_size} leaves no room for merges",
                f"a byte-level BPE needs at least {256 + len(SPECIAL_TOKENS) + 1} (256 bytes, "
                "the special tokens, one merge)",
            )


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise LabError(
            "the tiny model needs the tokenizers and safetensors packages",
            "install factoryctl with the serve extra: pip install 'factoryctl[serve]'",
        ) from exc
    return tokenizers


def train_tokenizer(vocab: int):
    """A byte-level BPE (GPT-2's scheme: every UTF-8 byte is a symbol, so any text encodes and
    decodes back exactly) trained on CORPUS, with <s> prepended to every encoded text."""
    tk = _tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tk.Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    # A Llama tokenizer adds the bos token to a plain encode (what /v1/completions does).
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos)]
    )
    return tok


def _weights(shape: TinyLlama, vocab: int, seed: int) -> dict:
    """Llama's tensors under the names transformers and vLLM map (model, layers, N,
    self_attn, q_proj, weight joined by dots), each [out_features, in_features] like
    torch.nn.Linear.

    numpy's PCG64 from the seed gives the same numbers on every machine. Each projection is
    drawn with std 1/sqrt(fan_in) (LeCun init: He et al. 2015, "Delving Deep into
    Rectifiers", sec. 2.2), not Llama's 0.02, so that attention and MLP move the residual
    stream and the next token depends on the context rather than on the last token alone.
    The output head is separate from the embedding (a tied head makes each token predict
    itself) and scaled so logits spread over several units: a greedy argmax then has a
    margin far above float rounding and two engines pick the same tokens."""
    import numpy as np

    rng = np.random.Generator(np.random.PCG64(seed))

    def normal(rows: int, cols: int, std: float):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def linear(rows: int, cols: int):
        return normal(rows, cols, cols**-0.5)

    h, q, kv = shape.hidden_size, shape.num_heads * shape.head_size, shape.num_kv_heads * shape.head_size
    out = {"model.embed_tokens.weight": normal(vocab, h, 1.0)}
    for i in range(shape.num_layers):
        # Joined, not one literal: docsgen_fields takes a dotted "layers" for model_spec's field.
        p = ".".join(("model", "layers", str(i), ""))
        out[p + "self_attn.q_proj.weight"] = linear(q, h)
        out[p + "self_attn.k_proj.weight"] = linear(kv, h)
        out[p + "self_attn.v_proj.weight"] = linear(kv, h)
        out[p + "self_attn.o_proj.weight"] = linear(h, q)
        out[p + "mlp.gate_proj.weight"] = linear(shape.intermediate_size, h)
        out[p + "mlp.up_proj.weight"] = linear(shape.intermediate_size, h)
        out[p + "mlp.down_proj.weight"] = linear(h, shape.intermediate_size)
        out[p + "input_layernorm.weight"] = np.ones(h, dtype=np.float32)
        out[p + "post_attention_layernorm.weight"] = np.ones(h, dtype=np.float32)
    out["model.norm.weight"] = np.ones(h, dtype=np.float32)
    out["lm_head.weight"] = normal(vocab, h, 4.0 * h**-0.5)
    return out


def _config(shape: TinyLlama, vocab: int, ids: dict[str, int]) -> dict:
    # float32: the weights are 1.7 MB, so halving them buys nothing, and bfloat16 on a CPU
    # without AVX512-BF16/AMX is emulated (slower), while float32 keeps the greedy tokens of
    # vLLM and transformers identical. Both the transformers 4 keys (torch_dtype, rope_theta)
    # and the 5 ones (dtype, rope_parameters) are written: the serving venv may hold either.
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads,
        "head_dim": shape.head_size,
        "hidden_act": "silu",
        "max_position_embeddings": shape.max_positions,
        "rms_norm_eps": shape.rms_norm_eps,
        "rope_theta": shape.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": shape.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "pad_token_id": ids[PAD],
        "dtype": "float32",
        "torch_dtype": "float32",
    }


def _dump(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def build_tiny_model(dest: Path, seed: int = 0, shape: TinyLlama | None = None) -> Path:
    """Write the model folder at dest (created; must be absent or empty). Same seed and
    shape, same bytes."""
    shape = shape or TinyLlama()
    shape.check()
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabError(f"{dest}: not an empty folder", "give a new or empty folder for the model")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return _write(dest, seed, shape)
    except OSError as exc:
        raise LabError(
            f"{dest}: cannot write the model: {exc.strerror or exc}",
            "give a folder on a writable file system with a few MB free",
        ) from exc


def _write(dest: Path, seed: int, shape: TinyLlama) -> Path:
    tok = train_tokenizer(shape.vocab_size)
    vocab = tok.get_vocab_size()  # the trainer stops early when the corpus runs out of pairs
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    tok.save(str(dest / "tokenizer.json"))

    from safetensors.numpy import save_file

    # metadata format=pt: transformers refuses a safetensors file without it.
    save_file(_weights(shape, vocab, seed), str(dest / "model.safetensors"), metadata={"format": "pt"})

    _dump(dest / "config.json", _config(shape, vocab, ids))
    _dump(
        dest / "generation_config.json",
        {"bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD]},
    )
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD}
    _dump(dest / "special_tokens_map.json", special)
    _dump(
        dest / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special,
            "model_max_length": shape.max_positions,
            "clean_up_tokenization_spaces": False,
            "chat_template": CHAT_TEMPLATE,
            "added_tokens_decoder": {
                str(ids[t]): {
                    "content": t,
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                    "special": True,
                }
                for t in SPECIAL_TOKENS
            },
        },
    )
    (dest / SUMS).write_text("".join(f"{_file_sha256(dest / name)}  {name}\n" for name in FILES))
    return dest


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recipe_digest(seed: int = 0, shape: TinyLlama | None = None) -> str:
    """What the folder's bytes depend on: a change to any of it is a new cache entry."""
    tk = _tokenizers()
    import safetensors

    recipe = {
        "recipe": RECIPE,
        "seed": seed,
        "shape": asdict(shape or TinyLlama()),
        "corpus": CORPUS,
        "chat_template": CHAT_TEMPLATE,
        "special": SPECIAL_TOKENS,
        "tokenizers": tk.__version__,
        "safetensors": safetensors.__version__,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cached_tiny_model(
    cache: Path | None = None,
    seed: int = 0,
    shape: TinyLlama | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The model folder for this recipe in the lab cache, built there first if absent."""
    cache = Path(cache) if cache else cache_dir()
    key = recipe_digest(seed, shape)
    final = cache / f"model-{key}"
    if (final / MARKER).is_file():
        return final
    try:
        with locked(cache / ".model.lock"):
            if (final / MARKER).is_file():  # built by another caller while we waited
                return final
            # With the lock held, any .model-build-* is from a build that died.
            for stale in cache.glob(".model-build-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():  # no marker: not ours to trust
                shutil.rmtree(final)
            if log:
                log(f"building the tiny lab model in {final} (once per recipe)")
            tmp = cache / f".model-build-{key}-{os.getpid()}"
            started = time.monotonic()
            try:
                build_tiny_model(tmp, seed=seed, shape=shape)
                meta = {"recipe": RECIPE, "seed": seed, "build_seconds": round(time.monotonic() - started, 3)}
                _dump(tmp / MARKER, meta)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except PermissionError as exc:
        raise LabError(
            f"cannot write the model cache {cache}: {exc.strerror}",
            "run as root, or point FACTORYCTL_LAB_CACHE at a folder you can write",
        ) from exc
    return final


def describe(folder: Path) -> list[tuple[str, int]]:
    """(file name, size in bytes) of the model's files, sorted by name."""
    return [(p.name, p.stat().st_size) for p in sorted(Path(folder).iterdir()) if p.name not in (MARKER, SUMS)]
