"""The local engine: a GGUF model run in-process by llama.cpp (llama-cpp-python).

Why not `create_chat_completion`: it detokenizes with special=False, so control tokens come out
as empty strings — and in Reflection GGUFs the six tags *are* control tokens, so every tag would
vanish. We render the chat template ourselves (sandboxed Jinja, like llama-cpp-python since
CVE-2024-34359), drive `Llama.generate` token by token and detokenize with special tokens kept.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from reflectchat.core.chat.prompts import (
    ChatTemplate,
    TemplateError,
    UnsafeTemplateError,
    prompt_char_limit,
)
from reflectchat.core.chat.thinking import ThinkingSwitch, thinking_switch
from reflectchat.core.engine.base import (
    CancelToken,
    ContextOverflowError,
    Delta,
    EngineError,
    Finished,
    FinishReason,
    GenerationParams,
    Message,
    ModelLoadError,
    Started,
    StatsClock,
    StreamEvent,
)
from reflectchat.core.engine.grammar import TAGS, strict_format_grammar
from reflectchat.core.engine.kv_store import CacheIdentity, KVStore, PendingState, note
from reflectchat.core.engine.llama_glue import (
    LLAMA_LOG,
    TokenDecoder,
    Vocab,
    extra_buffers_allowed,
    model_params,
    random_seed,
    register_rpc_servers,
    sampling,
)
from reflectchat.core.engine.sampler import TokenSampler
from reflectchat.core.engine.token_reuse import reusable_prefix, reuse_held_tokens
from reflectchat.core.host.llama_build import accelerator_name, gpu_offload_supported
from reflectchat.core.host.machine import available_ram, gpu_devices
from reflectchat.core.models.fit import (
    FitReport,
    ModelTooBigError,
    auto_gpu_layers,
    estimate_memory,
    plan_fit,
    too_big_message,
)
from reflectchat.core.models.gguf import GGUFHeader, read_gguf_parts
from reflectchat.core.models.resolve import ResolvedModel
from reflectchat.core.reply.detect import (
    Detection,
    detect_from_model,
    prefilled_opener,
    vocabulary_hints,
)
from reflectchat.core.reply.sections import resolve_format

MAX_CTX = 1 << 24  # llama.cpp's n_ctx is 32-bit; no model is trained on more than this


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int | None = None  # None: the catalog entry's context, capped by the model's own
    n_threads: int | None = None  # None: llama-cpp-python's default
    gpu_layers: str | int = "auto"  # N, "all" or "auto"
    seed: int | None = None
    # Called with 0.0…1.0 while the weights load (from the loading thread); return False to
    # abort the load. A 70B model takes a while; the UI shows this.
    progress: Callable[[float], bool | None] | None = None
    force: bool = False  # load even when the fit check says it won't fit
    # llama.cpp `rpc-server` endpoints ("host:port") to spread the model's layers over.
    rpc_servers: tuple[str, ...] = ()
    # The conversation the first turn continues (`ask -c`): its saved KV cache is read and
    # checked while the weights load.
    conversation: int | None = None


@dataclass(frozen=True)
class BackendInfo:
    """What a status line shows about the loaded model."""

    model: str
    quantization: str | None
    accelerator: str  # "CPU", "CUDA", "Metal", "Vulkan", …
    layers_offloaded: int
    layers_total: int
    n_ctx: int
    threads: int


def default_threads() -> int:
    """CPU threads for llama.cpp. llama-cpp-python's default (half the logical CPUs) leaves a
    2-core laptop or VM at half speed (measured: 58 vs 111 tok/s on the demo model); on bigger
    machines half the logical CPUs approximates the physical cores, which decoding prefers."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        logical = os.cpu_count() or 1
    return logical if logical <= 4 else logical // 2


def resolve_gpu_layers(value: str | int) -> int:
    """`auto`: every layer when this build can offload (CUDA/Metal/Vulkan), else 0 — llama-cpp-
    python's own default of 0 is the usual reason a user's GPU sits idle. -1 means all."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text == "all":
        return -1
    if text == "auto":
        return -1 if gpu_offload_supported() else 0
    try:
        layers = int(text)
    except ValueError:
        raise ValueError(f"--gpu-layers takes a number, 'all' or 'auto', not '{value}'") from None
    if layers < -1:
        raise ValueError(f"--gpu-layers must be 0 or more, not {layers}")
    return layers


class LlamaBackend:
    """A loaded GGUF model. Not thread-safe: one generation at a time."""

    can_answer_now = True  # it can write a format's closing sequence itself (ReplyStream)

    def __init__(self, model: ResolvedModel, options: LoadOptions | None = None) -> None:
        options = options or LoadOptions()
        self.model = model
        self.options = options
        # Saved KV caches (use_conversation): the conversation, its store and this model's
        # identity there, a saved state being read and the last save being written.
        self._conversation: int | None = None
        self._kv_store: KVStore | None = None
        self._kv_identity: CacheIdentity | None = None
        self._pending: PendingState | None = None
        self._saving: threading.Thread | None = None
        self._last_tokenized: tuple[str, tuple[int, ...]] | None = None  # tokenize_prompt's
        # Validate the file ourselves first: llama.cpp's parser is not to be trusted with
        # arbitrary bytes, and its own failure is a bare "Failed to load model".
        self.parts = read_gguf_parts(model.path)
        self.header: GGUFHeader = self.parts[0]
        trained_ctx = self.header.context_length
        wanted_ctx = options.n_ctx or (model.entry.context if model.entry else 4096)
        if not 1 <= wanted_ctx <= MAX_CTX:
            raise ModelLoadError(f"--ctx must be between 1 and {MAX_CTX:,}, not {wanted_ctx:,}")
        # Beyond the trained context a model degrades and its KV cache may not even fit: capped
        # there unless --force asks for more.
        if trained_ctx and not (options.force and options.n_ctx):
            self.n_ctx = min(wanted_ctx, trained_ctx)
        else:
            self.n_ctx = wanted_ctx
        self.fit = self._check_fit(options)
        self.gpu_layers = self.fit.gpu_layers
        if options.conversation is not None:
            self.use_conversation(options.conversation)  # starts reading its saved state

        LLAMA_LOG.install()
        if options.rpc_servers:
            register_rpc_servers(options.rpc_servers)
        from llama_cpp import Llama

        kwargs: dict[str, Any] = {
            "model_path": str(model.path),
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.gpu_layers,
            "verbose": False,
        }
        threads = options.n_threads or default_threads()
        kwargs["n_threads"] = threads
        kwargs["n_threads_batch"] = threads
        if options.seed is not None:
            kwargs["seed"] = options.seed
        self.threads = threads
        try:
            with model_params(options.progress, extra_buffers=extra_buffers_allowed()):
                self.llm = Llama(**kwargs)
        except Exception as exc:  # llama.cpp reports every failure as a bare ValueError
            reason = (LLAMA_LOG.reason() or str(exc)).rstrip(".")
            if "llama_context" in str(exc):  # the weights loaded; the context did not
                raise ModelLoadError(
                    f"llama.cpp could not allocate a {self.n_ctx:,}-token context for "
                    f"{model.path.name} ({reason}): try --ctx {self._smaller_ctx()} or smaller"
                ) from exc
            if "architecture" in reason:
                hint = "this llama.cpp is too old for the model: upgrade llama-cpp-python"
            else:
                hint = "the file may be damaged or not a llama.cpp model: download it again"
            raise ModelLoadError(
                f"llama.cpp could not load {model.path}: {reason}; {hint}"
            ) from exc

        self.vocab = Vocab(self.llm)
        self._formatter = self._make_formatter()
        self.special_tags = self._find_special_tags()
        self._grammar_text = strict_format_grammar(self.special_tags)
        self.reasoning = self._detect_format()

    def _smaller_ctx(self) -> int:
        """A context worth trying after one failed to allocate: what the free RAM holds beside
        the weights, within the trained context, and below the one that failed."""
        candidates = [max(self.n_ctx // 2, 256)]
        if self.header.context_length:
            candidates.append(self.header.context_length)
        estimate = self.fit.estimate
        ram = available_ram()
        if ram and estimate.kv_bytes and estimate.n_ctx:
            per_token = estimate.kv_bytes / estimate.n_ctx
            room = ram - estimate.weights_bytes - estimate.compute_bytes
            candidates.append(int(room / per_token) if room > 0 else 256)
        best = min(candidates)
        return max(256, best // 256 * 256)

    def _check_fit(self, options: LoadOptions) -> FitReport:
        """Weights + KV cache against free RAM/VRAM, before llama.cpp allocates anything."""
        estimate = estimate_memory(self.parts, self.n_ctx)
        gpus = gpu_devices() if options.gpu_layers != 0 and gpu_offload_supported() else []
        auto = str(options.gpu_layers).lower() == "auto"
        if options.rpc_servers:
            # The layers go to other machines (llama.cpp spreads offloaded layers over every
            # device, RPC servers included), whose memory we can't see: all of them by default,
            # as llama.cpp's own --rpc does.
            layers = -1 if auto else resolve_gpu_layers(options.gpu_layers)
            report = plan_fit(estimate, gpu_layers=0, gpus=gpus, ram_available=available_ram())
            return dataclasses.replace(report, gpu_layers=layers)
        if auto:
            layers = auto_gpu_layers(estimate, gpus)
        else:
            layers = resolve_gpu_layers(options.gpu_layers) if gpus else 0
        report = plan_fit(estimate, gpu_layers=layers, gpus=gpus, ram_available=available_ram())
        if not report.fits and not options.force:
            raise ModelTooBigError(too_big_message(self.model.path.name, report, self.model.entry))
        return report

    def _find_special_tags(self) -> dict[str, int]:
        """Tags that are one control/user-defined token here (Reflection 70B: all six)."""
        found = {}
        for tag in TAGS:
            ids = self.vocab.tokenize(tag.encode(), add_bos=False)
            if len(ids) == 1 and self.vocab.is_special(ids[0]):
                found[tag] = ids[0]
        return found

    def _detect_format(self) -> Detection:
        """The reasoning format, from the catalog, the chat template, the vocabulary's special
        tokens (harmony's <|channel|> is one control token) and the model's names."""
        special = []
        for hint in vocabulary_hints():
            ids = self.vocab.tokenize(hint.encode(), add_bos=False)
            if len(ids) == 1 and self.vocab.is_special(ids[0]):
                special.append(hint)
        entry = self.model.entry
        return detect_from_model(
            template=self.chat_template,
            special_tokens=special,
            names=(self.llm.metadata.get("general.name"), self.model.path.name),
            catalog_format=getattr(entry, "format", None) if entry is not None else None,
        )

    def describe(self) -> BackendInfo:
        total = self.header.block_count or 0
        offloaded = 0
        if self.gpu_layers != 0 and gpu_offload_supported():
            offloaded = total if self.gpu_layers < 0 else min(self.gpu_layers, total)
        return BackendInfo(
            model=self.model_name,
            quantization=self.header.quantization,
            accelerator=accelerator_name() if offloaded else "CPU",
            layers_offloaded=offloaded,
            layers_total=total,
            n_ctx=self.n_ctx,
            threads=self.threads,
        )

    def decoder(self) -> TokenDecoder:
        return TokenDecoder(self.piece)

    # -- prompt -----------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.model.display_name

    @property
    def chat_template(self) -> str | None:
        return self.llm.metadata.get("tokenizer.chat_template")

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token).decode("utf-8", "replace")

    def _make_formatter(self) -> ChatTemplate | None:
        """The GGUF's chat template, compiled in the bounded sandbox and tried once on a tiny
        conversation, so a hostile template fails the load (exit 2) in seconds rather than
        exhausting memory on the first prompt. Failing beats falling back to ChatML: a template
        like that means the file is not what it claims to be, and a silent fallback would give
        a well-made model the wrong prompt format without anyone noticing."""
        template = self.chat_template
        if not template:
            return None
        name = self.model.path.name
        try:
            formatter = ChatTemplate(
                template,
                eos_token=self._token_text(self.llm.token_eos()),
                bos_token=self._token_text(self.llm.token_bos()),
            )
            try:
                formatter.render([{"role": "user", "content": "Hi"}], limit=self._prompt_limit(2))
            except UnsafeTemplateError:
                raise
            except TemplateError:
                pass  # some templates refuse a lone user turn; real conversations say so if so
        except UnsafeTemplateError as exc:
            raise ModelLoadError(
                f"the chat template in {name} is unsafe: {exc}; use another copy of the model"
            ) from exc
        except TemplateError as exc:  # it does not compile
            raise ModelLoadError(
                f"the chat template in {name} is invalid ({exc}); use another copy of the model"
            ) from exc
        return formatter

    def _prompt_limit(self, input_chars: int) -> int:
        return prompt_char_limit(self.n_ctx, input_chars)

    def thinking_switch(self, params: GenerationParams) -> ThinkingSwitch:
        """What --think/--effort/--think-budget do to this model's prompt (per format)."""
        fmt = resolve_format(params.reasoning_format or self.reasoning.format)
        return thinking_switch(
            fmt,
            self.chat_template,
            think=params.think,
            effort=params.effort,
            budget=params.think_budget,
        )

    def render_prompt(self, messages: list[Message], params: GenerationParams | None = None) -> str:
        """The conversation as the model expects it, via the template stored in the GGUF, with
        the thinking switches `params` ask for."""
        switch = self.thinking_switch(params) if params is not None else ThinkingSwitch()
        return self._render(messages, switch.variables) + switch.prompt_suffix

    def _render(self, messages: list[Message], variables: dict[str, object]) -> str:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        if self._formatter is None:
            # No template in the file: ChatML is what most small instruct models understand.
            parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
            return "".join(parts) + "<|im_start|>assistant\n"
        limit = self._prompt_limit(sum(len(m.content) + len(m.role) for m in messages))
        name = self.model.path.name
        try:
            return self._formatter.render(payload, limit=limit, variables=variables)
        except UnsafeTemplateError as exc:
            raise EngineError(
                f"the chat template in {name} is unsafe: {exc}; use another copy of the model"
            ) from exc
        except TemplateError as exc:  # SecurityError from the sandbox, raise_exception(), …
            raise EngineError(f"the chat template in {name} failed to render: {exc}") from exc

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # The session measures the prompt it plans, then the turn sends that same prompt:
        # the last one is kept, so a long conversation is not tokenized twice per turn.
        last = self._last_tokenized
        if last is not None and last[0] == prompt:
            return list(last[1])
        tokens = self.vocab.tokenize(prompt.encode("utf-8"), add_bos=False)
        bos = self.llm.token_bos()
        if self.vocab.adds_bos() and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        self._last_tokenized = (prompt, tuple(tokens))
        return tokens

    def count_prompt_tokens(
        self, messages: list[Message], params: GenerationParams | None = None
    ) -> int:
        """The prompt's size in this model's tokens, as `stream` would send it (with the
        thinking switches of `params`, when given)."""
        return len(self.tokenize_prompt(self.render_prompt(messages, params)))

    def piece(self, token: int) -> bytes:
        """A token's bytes with special tokens kept (control tokens become their text)."""
        return self.vocab.piece(token)

    # -- generation ---------------------------------------------------------------------------

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        clock = StatsClock()
        prompt = self.render_prompt(messages, params)
        tokens = self.tokenize_prompt(prompt)
        n_prompt = len(tokens)
        if n_prompt >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_prompt} tokens but the context holds {self.n_ctx}; "
                "shorten it or raise --ctx"
            )
        kv = self._kv()  # the conversation this turn belongs to, saved under it at the end
        self._restore_saved(tokens, kv)
        # What the cache spells as the prompt does, in other tokens (a reply the tokenizer
        # cuts differently from how the model wrote it), is kept in the cache's tokens.
        aligned = reuse_held_tokens(self._held(), tokens, self.vocab.piece)
        if len(aligned) < self.n_ctx:
            tokens = aligned
            n_prompt = len(tokens)
        cached = self._shared_prefix(tokens)
        fmt = resolve_format(params.reasoning_format or self.reasoning.format)
        yield Started(
            prompt_tokens=n_prompt,
            cached_tokens=cached,
            prefill=prefilled_opener(prompt, fmt),
            format=fmt.name,
        )

        self._forced: list[int] = []  # tokens to write instead of sampling (closing a thinking)
        seed = params.seed if params.seed is not None else random_seed()
        grammar = self._grammar_text if params.strict_format else None
        sampler = TokenSampler(self.llm, sampling(params), seed, grammar)
        budget = min(params.max_tokens, self.n_ctx - n_prompt)
        decoder = self.decoder()
        is_eog = self.vocab.is_eog
        reason: FinishReason = "length"
        generator = self._decode(tokens, sampler)
        try:
            if budget > 0:
                for token in generator:
                    clock.first_token()  # an end-of-generation token too: the model answered
                    if is_eog(token):
                        reason = "stop"
                        break
                    clock.token()
                    text = decoder.decode(token)
                    if text:
                        yield Delta(text)
                    if cancel is not None and cancel.cancelled:
                        reason = "cancelled"
                        break
                    closing = cancel.take_answer_request() if cancel is not None else None
                    if closing:  # "answer now" or a thinking budget: write the close ourselves
                        self._forced = self.vocab.tokenize(closing.encode(), add_bos=False)
                    if clock.tokens >= budget:
                        reason = "length"
                        break
        finally:
            generator.close()
            sampler.close()
        tail = decoder.flush()
        if tail:
            yield Delta(tail)
        finished = Finished(reason, clock.stats(prompt_tokens=n_prompt, cached_tokens=cached))
        self._save_state(kv)  # after the stats: the reply is done, this is for the next turn
        yield finished

    # -- saved KV caches (core/engine/kv_store.py) ----------------------------------------------

    def use_conversation(self, conversation_id: int | None) -> None:
        """The conversation the next turns belong to: its saved KV cache is restored before a
        turn when it fits the prompt better than what memory holds, and saved after it. When
        the conversation changes, its file is read and checked from now on in the background
        (kv_store.PendingState) rather than inside the next turn's time to first token."""
        changed = conversation_id != self._conversation
        self._conversation = conversation_id
        kv = self._kv()  # opens the store (reads the config) now, not inside the next turn
        if changed:
            # A save still being written is waited for by the reading thread, not here (the
            # chat app calls this on its UI thread), so the file is read whole.
            self._pending = (
                kv[0].prefetch(kv[2], kv[1], after=self._saving) if kv is not None else None
            )

    def _kv(self) -> tuple[KVStore, CacheIdentity, int] | None:
        """The store, this model's identity and the conversation, if there is one to cache."""
        conversation = self._conversation
        if conversation is None:
            return None
        if self._kv_store is None or self._kv_identity is None:
            import llama_cpp

            self._kv_store = KVStore()
            self._kv_identity = CacheIdentity.of(self.model.path, self.n_ctx, llama_cpp.__version__)
        if not self._kv_store.enabled:
            return None
        return self._kv_store, self._kv_identity, conversation

    def _restore_saved(
        self, tokens: list[int], kv: tuple[KVStore, CacheIdentity, int] | None
    ) -> None:
        pending, self._pending = self._pending, None  # read once: the turn saves a newer one
        if kv is None:
            return
        store, identity, conversation = kv
        state: ctypes.Array[ctypes.c_uint8] | None = None
        if pending is not None and pending.is_for(conversation, identity):
            read = pending.result()  # mostly read by now, while the weights loaded
            if read is None or read[1] is None:
                return  # no file, or one that didn't check out (noted under --debug)
            saved, state = read
        else:
            loaded = store.load(conversation, identity)
            if loaded is None:
                return
            saved = loaded
        piece = self.vocab.piece
        shared = reusable_prefix(saved.tokens, tokens, piece)[1]  # prompt tokens it covers
        if (
            shared <= reusable_prefix(self._held(), tokens, piece)[1]
            or len(saved.tokens) > self.n_ctx
        ):
            return  # memory already holds as much (the chat app's next turn)
        state = state if state is not None else saved.read_state()
        if state is None:
            return
        llm = self.llm
        llm.reset()
        import llama_cpp

        if llama_cpp.llama_state_seq_set_data(llm.ctx, state, len(state), 0) != len(state):
            note(f"llama.cpp refused the saved KV cache {saved.path.name}; evaluating the prompt")
            llm.reset()
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
            return
        n = len(saved.tokens)
        llm.input_ids[:n] = saved.tokens
        llm.n_tokens = n
        store.touch(saved)

    def _save_state(self, kv: tuple[KVStore, CacheIdentity, int] | None) -> None:
        if kv is None or self.llm.n_tokens == 0:
            return
        import llama_cpp

        store, identity, conversation = kv
        ctx = self.llm.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if written <= 0:
            note("llama.cpp gave no KV cache state to save")
            return
        tokens = self._held()
        # The bytes are taken now (the next turn changes the cache); the checksum and the write
        # — seconds for a 70B model's gigabytes — run in the background, so the reply's end is
        # not held up by them. Not a daemon: a process waits for its last save before it exits.
        self.wait_for_saves()  # one at a time, so a conversation's files land in order
        self._saving = store.save_in_background(
            conversation, identity, tokens, memoryview(buf)[:written]
        )

    def wait_for_saves(self) -> None:
        """Until the last turn's KV cache is on disk (or failed to be, with a --debug note)."""
        if self._saving is not None:
            self._saving.join()
            self._saving = None

    def _decode(self, tokens: list[int], sampler: TokenSampler) -> Generator[int, None, None]:
        """The decode loop: evaluate what the KV cache lacks of the prompt, then per step choose
        one token (`_next_token`), hand it out, and evaluate it — unless the caller stops."""
        self._evaluate_prompt(tokens)
        while True:
            token = self._next_token(sampler)
            yield token
            self.llm.eval([token])

    def _next_token(self, sampler: TokenSampler) -> int:
        """One step: the token the sampler draws under the grammar's current state, accepted
        into that state. A token forced from outside (say, a budget closing the thinking) would
        be accepted here instead of a sampled one, after `sampler.allows(token)`."""
        while self._forced:
            token = self._forced.pop(0)
            if sampler.allows(token):
                sampler.accept(token)
                return token
            self._forced.clear()  # the grammar won't have it here: let the model go on
        token = sampler.sample()
        sampler.accept(token)
        return token

    def _evaluate_prompt(self, tokens: list[int]) -> None:
        """Keep the KV cache's longest shared prefix and evaluate the rest, as `Llama.generate`
        does; at least the last prompt token is evaluated again, for fresh logits."""
        llm = self.llm
        keep = self._shared_prefix(tokens)
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:  # nothing shared, or a model whose cache can't be cut (recurrent)
            llm.reset()
            keep = 0
        llm._requires_eval = True  # what Llama.generate checks before trusting cached logits
        llm.eval(tokens[keep:])

    def _held(self) -> list[int]:
        """The tokens the KV cache holds now."""
        return self.llm.input_ids[: self.llm.n_tokens].tolist()

    def _shared_prefix(self, tokens: list[int]) -> int:
        """How many prompt tokens the KV cache already holds (llama-cpp-python reuses them)."""
        held = self.llm.n_tokens
        if held == 0:
            return 0
        cached = 0
        for a, b in zip(self.llm._input_ids[:held], tokens, strict=False):
            if a != b:
                break
            cached += 1
        # A fully cached prompt still replays its last token to refresh the logits.
        return min(cached, len(tokens) - 1)
