r"""Local Hugging Face models (``hf/PATH_OR_HUB_ID``), batched on one worker.

Requests from concurrent ``complete()`` calls go into a queue. One background
task takes up to ``batch_size`` of them that share the same settings, renders
each with the model's own chat template, left-pads them into one batch and runs
``model.generate`` in a thread, so the event loop stays free while the model
works. While one batch generates, the next one is already prepared in another
thread (images decoded and preprocessed, prompts tokenized), and a conversation
shared by many requests is rendered through the chat template once. Processors
that need torchvision only for videos load without it (see
:mod:`.processors`).

What ``Completion.content`` holds: everything the assistant turn contains after
the template's generation prompt, i.e. the generated text *plus any text this
backend forced in*:

* ``extra["no_think"] = True`` prefills ``<think>\n\n</think>\n\n`` (only
  ``</think>\n\n`` when the template itself already opened ``<think>``); the
  prefill is the start of ``content``.
* ``extra["think_budget"] = N`` generates at most N tokens; a row that has not
  stopped and has no ``</think>`` yet gets ``\n</think>\n\n`` appended, then
  generation continues for up to ``max_tokens - N`` more tokens. The forced tag
  is part of ``content``.

``prompt_tokens`` counts the tokens fed to the model (image placeholders and
any prefill included); ``completion_tokens`` counts only tokens the model
generated (forced text is not counted, the EOS token is); ``latency_s`` is the
wall time of the request's batch, not its time in the queue.

Decoding: temperature 0 is greedy. Otherwise sampling with ``temperature`` and
``top_p``, seeded once per batch (``torch.manual_seed(seed)``, which is
process-global), so sampled outputs depend on how requests were batched; greedy
outputs do not. Options the settings do not name (``top_k``,
``repetition_penalty``...) come from the model's ``generation_config``, as in
vLLM. ``extra["chat_template_kwargs"]`` is passed to the chat template (e.g.
``{"enable_thinking": False}`` for Qwen3 templates). Image placeholder tokens
are never generated (``suppress_tokens``).

torch and transformers are imported only inside this module, and only when a
model is loaded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..records import Completion
from .base import Backend, BackendError, GenerationSettings, Message
from .fingerprint import backend_fingerprint

NO_THINK_PREFILL = "<think>\n\n</think>\n\n"
FORCED_CLOSE = "\n</think>\n\n"
THINK_TAGS = ("<think>", "</think>")
_ENDS_IN_THINK = re.compile(r"<think>\s*$")
_DTYPES = (None, "auto", "float32", "bfloat16", "float16")


@dataclass(eq=False)
class _Request:
    """One pending ``complete()`` call."""

    messages: list[Message]
    settings: GenerationSettings
    future: asyncio.Future
    key: str


@dataclass(eq=False)
class _Prepared:
    """A request rendered and ready to batch."""

    request: _Request
    prompt: str
    """The text fed to the model: template output plus ``prefill``."""
    prefill: str
    """Text forced into the assistant turn before generating (part of content)."""
    images: list[Any] = field(default_factory=list)
    prefilled_think: bool = False


@dataclass
class _Row:
    """Generation result for one prepared request."""

    ids: list[int]
    """Generated and forced token ids, in order (EOS excluded)."""
    generated: int = 0
    finished: bool = False
    prompt_tokens: int = 0


def _settings_key(settings: GenerationSettings) -> str:
    return json.dumps(settings.to_dict(), sort_keys=True, default=str)


class HFBackend(Backend):
    """A transformers model run in-process with batched, left-padded generation.

    Args:
        path: Local folder or Hub id of the model.
        adapter: Optional PEFT adapter folder (or Hub id) applied on top.
        batch_size: Most requests generated together.
        trust_remote_code: Allow model code from the checkpoint (off by default).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` (accelerate
            device map); default: cuda when available, else cpu.
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``;
            default ``"auto"`` (the checkpoint's dtype).
    """

    batch_wait_s = 0.005
    """How long the worker waits for more requests before running a partial batch."""

    def __init__(self, path: str, adapter: str | None = None, batch_size: int = 8,
                 trust_remote_code: bool = False, device: str | None = None, dtype: str | None = None):
        if batch_size < 1:
            raise UsageError("--batch-size must be >= 1")
        if dtype not in _DTYPES:
            raise UsageError(f"--dtype must be one of {sorted(d for d in _DTYPES if d)}, not {dtype!r}")
        self.path, self.adapter, self.batch_size = path, adapter, batch_size
        self.trust_remote_code, self.device, self.dtype = trust_remote_code, device, dtype
        self.spec = "hf/" + path
        self.model: Any = None
        self.processor: Any = None
        """The AutoProcessor, or None for a text-only model."""
        self.tokenizer: Any = None
        self.generate_calls = 0
        """How many times ``model.generate`` ran (batching shows here)."""
        self._load_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._pending: list[_Request] = []
        self._running: list[_Request] = []
        self._worker: asyncio.Task | None = None
        self._drop_ids: set[int] = set()
        self._suppress_ids: list[int] = []
        self._rendered: dict[str, str] = {}

    # ----------------------------------------------------------------- Backend API

    @property
    def concurrency(self) -> int:
        """Twice the batch size, so a new batch is queued while one runs."""
        return 2 * self.batch_size

    def fingerprint_config(self) -> dict[str, Any]:
        """Spec, dtype, adapter path and a hash of its weights when local.

        Same as :func:`~thinksafe.models.fingerprint.backend_fingerprint`, which
        the runner computes without building the backend.
        """
        return backend_fingerprint(self.spec, {"dtype": self.dtype, "adapter": self.adapter})

    async def complete(self, messages: list[Message], settings: GenerationSettings) -> Completion:
        """Queue one request and wait for its batch to finish."""
        self._ensure_worker()
        assert self._queue is not None and self._loop is not None
        future = self._loop.create_future()
        await self._queue.put(_Request(messages, settings, future, _settings_key(settings)))
        return await future

    async def aclose(self) -> None:
        """Stop the worker, fail what is still queued and free the model."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        # A batch cut off mid-generation would otherwise leave its callers waiting forever.
        leftovers = self._running + self._pending + self._drain_queue()
        for req in leftovers:
            if not req.future.done():
                req.future.set_exception(BackendError("backend closed before the request ran"))
        self._worker, self._queue, self._pending, self._running = None, None, [], []
        self.model = self.processor = self.tokenizer = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------- loading

    def load(self) -> None:
        """Load model, processor and adapter (idempotent, thread-safe)."""
        with self._load_lock:
            if self.model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

        from .processors import load_processor

        dtype = "auto" if self.dtype in (None, "auto") else getattr(torch, self.dtype)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": self.trust_remote_code}
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "auto":
            kwargs["device_map"] = "auto"
        try:
            model = AutoModelForImageTextToText.from_pretrained(self.path, **kwargs)
        except ValueError:
            # Not an image-text-to-text architecture: a text-only causal LM.
            model = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
            processor = None
            tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
        else:  # a processor error surfaces as itself, not as a text-only fallback
            processor = load_processor(self.path, self.trust_remote_code)
            tokenizer = processor.tokenizer
        if device != "auto":
            model = model.to(device)
        if self.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        # Left padding keeps every prompt's last token at the end of the row,
        # which is where generation continues from.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.processor, self.tokenizer = model.eval(), processor, tokenizer
        # Computed once: get_vocab() on a 150k-token vocabulary is not free.
        self._drop_ids, self._suppress_ids = self._special_ids(), self._placeholder_ids()

    # -------------------------------------------------------------------- worker

    def _ensure_worker(self) -> None:
        """Start the worker on the running loop (again, if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop, self._queue, self._pending = loop, asyncio.Queue(), []
            self._worker = loop.create_task(self._work())

    def _drain_queue(self) -> list[_Request]:
        items: list[_Request] = []
        while self._queue is not None and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def _work(self) -> None:
        """Generate batch after batch; the next batch is prepared while the model generates."""
        ahead: asyncio.Task | None = None
        try:
            while True:
                if ahead is None:
                    ahead = self._prepare_ahead(await self._next_batch())
                batch, encoded = await ahead
                ahead = None
                generating = asyncio.ensure_future(self._generate_isolating_errors(batch, encoded))
                if self._pending or (self._queue is not None and not self._queue.empty()):
                    # Images of the next batch are decoded and preprocessed now, not after this one.
                    ahead = self._prepare_ahead(await self._next_batch())
                try:
                    await generating
                except Exception as exc:  # noqa: BLE001 - keep the worker alive for later requests
                    _fail([item.request for item in batch], BackendError(f"{self.spec}: {type(exc).__name__}: {exc}"))
                self._running = [r for r in self._running if not r.future.done()]
        finally:
            if ahead is not None:
                ahead.cancel()

    def _prepare_ahead(self, requests: list[_Request]) -> asyncio.Task:
        """Start preparing a batch; the task returns ``(prepared items, encoding or None)``."""
        # Callers of every batch in the works are failed by aclose() instead of waiting forever.
        self._running = [r for r in self._running if not r.future.done()] + list(requests)
        return asyncio.ensure_future(self._prepare_batch(requests))

    async def _prepare_batch(self, requests: list[_Request]) -> tuple[list[_Prepared], Any]:
        """Load the model, render each request (a bad one fails alone) and encode the batch once."""
        ready: list[_Prepared] = []
        if not requests:
            return ready, None
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:  # noqa: BLE001 - keep the worker alive for later requests
            _fail(requests, BackendError(f"{self.spec}: {type(exc).__name__}: {exc}"))
            return ready, None
        for req in requests:
            try:
                ready.append(await asyncio.to_thread(self._prepare, req))
            except Exception as exc:  # noqa: BLE001 - one bad request must not sink the batch
                _fail([req], _as_backend_error(exc, "could not prepare request"))
        if not ready:
            return ready, None
        try:
            encoded = await asyncio.to_thread(self._encode, ready, [[] for _ in ready])
        except Exception:  # noqa: BLE001 - the rows are encoded one by one again and fail alone
            encoded = None
        return ready, encoded

    async def _next_batch(self) -> list[_Request]:
        """Up to ``batch_size`` pending requests with the same settings, oldest first."""
        assert self._queue is not None
        if not self._pending:
            self._pending.append(await self._queue.get())
        self._pending += self._drain_queue()
        if len(self._pending) < self.batch_size:
            # Callers that start together enqueue a moment apart; wait for them.
            await asyncio.sleep(self.batch_wait_s)
            self._pending += self._drain_queue()
        key = self._pending[0].key
        batch = [r for r in self._pending if r.key == key][: self.batch_size]
        chosen = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in chosen]
        return [r for r in batch if not r.future.done()]  # skip cancelled callers

    async def _generate_isolating_errors(self, ready: list[_Prepared], encoded: Any = None) -> None:
        """Run the batch; if it fails, rerun one by one to fail only the culprits."""
        if not ready:
            return
        try:
            completions = await asyncio.to_thread(self._generate, ready, encoded)
        except Exception as exc:  # noqa: BLE001
            if len(ready) == 1:
                _fail([ready[0].request], _as_backend_error(exc, "generation failed"))
                return
            for item in ready:
                await self._generate_isolating_errors([item])
            return
        for item, completion in zip(ready, completions, strict=True):
            if not item.request.future.done():
                item.request.future.set_result(completion)

    # ------------------------------------------------------------ preparation

    def _prepare(self, req: _Request) -> _Prepared:
        """Render the chat template, load images and apply the no-think prefill."""
        messages, images = self._template_messages(req.messages)
        template_kwargs = dict(req.settings.extra.get("chat_template_kwargs") or {})
        prompt = self._render(messages, template_kwargs)
        prefilled_think = bool(_ENDS_IN_THINK.search(prompt))
        prefill = ""
        if req.settings.extra.get("no_think"):
            prefill = "</think>\n\n" if prefilled_think else NO_THINK_PREFILL
        return _Prepared(req, prompt + prefill, prefill, images, prefilled_think)

    def _render(self, messages: list[Message], template_kwargs: dict[str, Any]) -> str:
        """The chat template's output, rendered once per distinct conversation.

        Benchmarks send the same text with thousands of images (FigStep's one
        instruction); image parts are bare ``{"type": "image"}`` here, so those
        conversations share one rendering.
        """
        key = json.dumps([messages, template_kwargs], sort_keys=True, default=str)
        prompt = self._rendered.get(key)
        if prompt is None:
            owner = self.processor if self.processor is not None else self.tokenizer
            prompt = owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                               **template_kwargs)
            if len(self._rendered) >= 4096:
                self._rendered.clear()
            self._rendered[key] = prompt
        return prompt

    def _template_messages(self, messages: list[Message]) -> tuple[list[Message], list[Any]]:
        """Messages in the form chat templates expect, plus the loaded images."""
        out: list[Message] = []
        images: list[Any] = []
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part.get("type") == "image":
                        if self.processor is None:
                            raise BackendError(f"{self.spec} is a text-only model; it cannot take images")
                        images.append(_load_image(part))
                        parts.append({"type": "image"})
                    else:
                        parts.append(part)
                content = parts if self.processor is not None else _text_only(parts)
            out.append({**message, "content": content})
        return out, images

    # -------------------------------------------------------------- generation

    def _generate(self, batch: list[_Prepared], encoded: Any = None) -> list[Completion]:
        """Generate for a prepared batch (runs in a worker thread); ``encoded``: its ``_encode`` output."""
        start = time.perf_counter()
        settings = batch[0].request.settings
        budget = settings.extra.get("think_budget")
        first = min(int(budget), settings.max_tokens) if budget is not None else settings.max_tokens
        rows = self._generate_rows(batch, [[] for _ in batch], first, settings, encoded)
        if budget is not None and settings.max_tokens > first:
            self._continue_past_budget(batch, rows, settings.max_tokens - first, settings)
        latency = time.perf_counter() - start
        return [self._completion(item, row, latency) for item, row in zip(batch, rows, strict=True)]

    def _continue_past_budget(self, batch: list[_Prepared], rows: list[_Row], remaining: int,
                              settings: GenerationSettings) -> None:
        """Close the thinking of rows cut by the budget and let them go on."""
        todo = [i for i, row in enumerate(rows) if not row.finished]
        if not todo:
            return
        forced = self.tokenizer.encode(FORCED_CLOSE, add_special_tokens=False)
        for i in todo:
            if THINK_TAGS[1] not in batch[i].prefill + self._decode(rows[i].ids):
                rows[i].ids += forced
        more = self._generate_rows([batch[i] for i in todo], [rows[i].ids for i in todo], remaining, settings)
        for i, extra in zip(todo, more, strict=True):
            rows[i].ids += extra.ids
            rows[i].generated += extra.generated
            rows[i].finished = extra.finished

    def _generate_rows(self, batch: list[_Prepared], suffixes: list[list[int]], max_new: int,
                       settings: GenerationSettings, encoded: Any = None) -> list[_Row]:
        """One ``model.generate`` call; each row's prompt is followed by its suffix ids."""
        import torch

        inputs, prompt_lengths = encoded or self._encode(batch, suffixes)
        inputs = self._to_device(inputs)
        kwargs = self._generate_kwargs(settings, max_new)
        if kwargs["do_sample"] and settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        self.generate_calls += 1
        new = output[:, inputs["input_ids"].shape[1]:].tolist()
        return [self._row(ids, n) for ids, n in zip(new, prompt_lengths, strict=True)]

    def _row(self, ids: list[int], prompt_tokens: int) -> _Row:
        eos = self._eos_ids()
        for k, token in enumerate(ids):
            if token in eos:
                return _Row(ids[:k], k + 1, True, prompt_tokens)
        return _Row(ids, len(ids), False, prompt_tokens)

    def _generate_kwargs(self, settings: GenerationSettings, max_new: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id}
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self._suppress_ids:
            # A generated image placeholder would not match any image features
            # when a think-budget continuation feeds the output back in.
            kwargs["suppress_tokens"] = self._suppress_ids
        return kwargs

    def _encode(self, batch: list[_Prepared], suffixes: list[list[int]]) -> tuple[dict[str, Any], list[int]]:
        """Tokenize prompts (with images), append suffix ids, left-pad (on the CPU)."""
        prompts = [item.prompt for item in batch]
        if self.processor is not None:
            images = [item.images for item in batch] if any(item.images for item in batch) else None
            enc = self.processor(text=prompts, images=images, padding=True, return_tensors="pt",
                                 add_special_tokens=False)
        else:
            enc = self.tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        enc = dict(enc)
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        if any(suffixes):
            enc = _append_left_padded(enc, suffixes, self.tokenizer.pad_token_id)
        return enc, prompt_lengths

    def _to_device(self, enc: dict[str, Any]) -> dict[str, Any]:
        import torch

        device, dtype = self.model.device, self.model.dtype
        moved = {}
        for key, value in enc.items():
            if isinstance(value, torch.Tensor):
                value = value.to(device, dtype) if value.is_floating_point() else value.to(device)
            moved[key] = value
        return moved

    # ------------------------------------------------------------------ decoding

    def _completion(self, item: _Prepared, row: _Row, latency: float) -> Completion:
        return Completion(
            content=item.prefill + self._decode(row.ids),
            finish_reason="stop" if row.finished else "length",
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.generated,
            latency_s=latency,
            prefilled_think=item.prefilled_think,
        )

    def _decode(self, ids: list[int]) -> str:
        """Decode, dropping special tokens but never ``<think>``/``</think>``."""
        kept = [i for i in ids if i not in self._drop_ids]
        return self.tokenizer.decode(kept, skip_special_tokens=False)

    def _special_ids(self) -> set[int]:
        tok = self.tokenizer
        special = set(tok.all_special_ids)
        special |= {i for i, t in tok.added_tokens_decoder.items() if getattr(t, "special", False)}
        vocab = tok.get_vocab()
        return special - {vocab[t] for t in THINK_TAGS if t in vocab}

    def _eos_ids(self) -> set[int]:
        config_eos = self.model.generation_config.eos_token_id
        ids = set(config_eos if isinstance(config_eos, list) else [config_eos])
        ids.add(self.tokenizer.eos_token_id)
        return {i for i in ids if i is not None}

    def _placeholder_ids(self) -> list[int]:
        """Token ids that stand for images/videos in the prompt."""
        if self.processor is None:
            return []
        ids = {getattr(self.processor, name, None) for name in ("image_token_id", "video_token_id")}
        for name in ("image_token", "video_token"):
            token = getattr(self.processor, name, None) or getattr(self.tokenizer, name, None)
            if isinstance(token, str) and token in self.tokenizer.get_vocab():
                ids.add(self.tokenizer.convert_tokens_to_ids(token))
        return sorted(i for i in ids if isinstance(i, int))


# ---------------------------------------------------------------------- helpers


def _fail(requests: list[_Request], error: BaseException) -> None:
    for req in requests:
        if not req.future.done():
            req.future.set_exception(error)


def _as_backend_error(exc: BaseException, what: str) -> BackendError:
    if isinstance(exc, BackendError):
        return exc
    return BackendError(f"{what}: {type(exc).__name__}: {exc}")


def _load_image(part: dict[str, Any]):
    """An image part (``path``, or an in-memory PIL ``image``) as an RGB PIL image."""
    from PIL import Image

    if isinstance(part.get("image"), Image.Image):
        return part["image"].convert("RGB")
    path = part.get("path")
    if not path:
        raise BackendError(f"image part without a 'path': {sorted(part)}")
    try:
        with Image.open(path) as img:
            if img.mode == "RGB":  # no copy: the decoded pixels are used as they are
                img.load()
                return img
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds
        raise BackendError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def _text_only(parts: list[dict[str, Any]]) -> str:
    """Join text parts: text-only chat templates expect string content."""
    return "".join(p.get("text", "") for p in parts if p.get("type") == "text")


def _append_left_padded(enc: dict[str, Any], suffixes: list[list[int]], pad_id: int) -> dict[str, Any]:
    """Append token ids after each row's prompt and left-pad the rows again.

    Every tensor laid out (batch, sequence, ...) like ``input_ids`` is extended
    too: masks (``attention_mask``, Mllama's ``cross_attention_mask``) repeat
    their value at the row's last token, as ``generate`` does for new tokens;
    others (token type ids) get 0.
    """
    import torch

    ids, mask = enc["input_ids"], enc["attention_mask"]
    keys = [k for k, v in enc.items() if isinstance(v, torch.Tensor) and v.shape[:2] == ids.shape]
    rows = []
    for r, suffix in enumerate(suffixes):
        keep = mask[r].bool()
        row = {}
        for key in keys:
            kept = enc[key][r][keep]
            if key == "input_ids":
                fill = torch.tensor(suffix, dtype=kept.dtype)
            elif "attention_mask" in key:
                fill = kept[-1:].expand(len(suffix), *kept.shape[1:])
            else:
                fill = torch.zeros((len(suffix), *kept.shape[1:]), dtype=kept.dtype)
            row[key] = torch.cat([kept, fill])
        rows.append(row)
    width = max(len(row["input_ids"]) for row in rows)
    out = dict(enc)
    for key in keys:
        pad = pad_id if key == "input_ids" else 0
        out[key] = torch.stack([torch.cat([torch.full((width - len(row[key]), *row[key].shape[1:]), pad,
                                                      dtype=row[key].dtype), row[key]]) for row in rows])
    return out
