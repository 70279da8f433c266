"""Requests to the judge: an OpenAI-compatible endpoint asked through the `openai` client, with
retries and exponential backoff, and every answer cached on disk (see the package docstring)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rewardcond.artifacts import write_json
from rewardcond.llm_judge.protocol import LLMJudgeError, LLMJudgeSettings

log = logging.getLogger(__name__)

_RETRIED_STATUS = (408, 409, 429)


def request_key(model: str, request: Mapping) -> str:
    """sha256 of the judge model and the full request (prompt text and sampling parameters)."""
    blob = json.dumps({"model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Completion:
    """One judge answer: its text, why it stopped, and the tokens it cost."""

    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class JudgmentCache:
    """One JSON file per request key under `root/<key[:2]>/<key>.json`, written atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, model: str, request: Mapping) -> Completion | None:
        """The cached answer, or None. A file that is not a complete record of this very
        request is an error naming it (atomic writes never leave one)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["model"] != model or record["request"] != json.loads(json.dumps(request)):
                raise ValueError("it records another request")
            return Completion(**record["completion"])
        except (ValueError, KeyError, TypeError) as error:
            raise LLMJudgeError(
                f"{path}: not a cached judgment of this request ({error}); delete the file to "
                "ask the judge again"
            ) from error

    def put(self, key: str, model: str, request: Mapping, completion: Completion) -> None:
        record = {"model": model, "request": request, "completion": asdict(completion)}
        write_json(self.path(key), record)


@dataclass
class RequestCounts:
    """What a run sent: answered requests, retries (failed attempts retried) and cache hits."""

    api_calls: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class ChatJudge:
    """Sends judge prompts to an OpenAI-compatible endpoint with the `openai` client, retrying
    transient failures with exponential backoff, and caches every answer.

    `environ` is where the API key is read (default `os.environ`); `sleep` is called with each
    backoff delay in seconds (tests pass a recorder).
    """

    def __init__(
        self,
        settings: LLMJudgeSettings,
        cache: JudgmentCache,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import openai  # only a run that judges needs the client

        environ = os.environ if environ is None else environ
        api_key = environ.get(settings.api_key_env)
        if not api_key:
            raise LLMJudgeError(
                f"{settings.config_key}.api_key_env: the environment variable "
                f"{settings.api_key_env!r} is not set or empty; export the judge endpoint's API "
                "key there (a local `vllm serve` without --api-key takes any value, e.g. EMPTY)"
            )
        self.settings = settings
        self.cache = cache
        self.counts = RequestCounts()
        self._sleep = sleep
        self._openai = openai
        # Retries are ours (counted, tested); the client makes one attempt per call.
        self._client = openai.OpenAI(
            api_key=api_key, base_url=settings.base_url, timeout=settings.timeout_s, max_retries=0
        )

    def judge(self, prompt: str) -> Completion:
        """The answer to `prompt`, from the cache when it holds it, else from the endpoint."""
        request = self.settings.request(prompt)
        key = request_key(self.settings.model, request)
        cached = self.cache.get(key, self.settings.model, request)
        if cached is not None:
            self.counts.add(cache_hits=1)
            return cached
        completion = self._complete(request)
        self.cache.put(key, self.settings.model, request, completion)
        self.counts.add(
            api_calls=1,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        return completion

    def _retryable(self, error: Exception) -> bool:
        if isinstance(error, self._openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(error, self._openai.APIStatusError):
            return error.status_code in _RETRIED_STATUS or error.status_code >= 500
        return False

    def _describe(self, error: Exception) -> str:
        if isinstance(error, self._openai.APITimeoutError):
            return f"no answer within timeout_s={self.settings.timeout_s}"
        if isinstance(error, self._openai.APIStatusError):
            return f"HTTP {error.status_code}: {str(error)[:300]}"
        return f"{type(error).__name__}: {str(error)[:300]}"

    def _complete(self, request: dict) -> Completion:
        settings = self.settings
        attempts = settings.max_retries + 1
        for attempt in range(attempts):
            try:
                response = self._client.chat.completions.create(model=settings.model, **request)
            except self._openai.OpenAIError as error:
                where = f"judge endpoint {settings.base_url} (model {settings.model!r})"
                if not self._retryable(error):
                    hint = ""
                    if isinstance(error, self._openai.AuthenticationError):
                        hint = f"; check the key in the environment variable {settings.api_key_env}"
                    raise LLMJudgeError(f"{where}: {self._describe(error)}{hint}") from error
                if attempt == attempts - 1:
                    raise LLMJudgeError(
                        f"{where} failed {attempts} attempts (max_retries={settings.max_retries}),"
                        f" the last with {self._describe(error)}; the judgments answered so far "
                        f"are cached in {self.cache.root} and a rerun resumes from there"
                    ) from error
                delay = min(settings.backoff_max_s, settings.backoff_initial_s * 2**attempt)
                log.warning(
                    "%s: %s; retry %d of %d in %.3g s",
                    where,
                    self._describe(error),
                    attempt + 1,
                    settings.max_retries,
                    delay,
                )
                self.counts.add(retries=1)
                self._sleep(delay)
                continue
            choice = response.choices[0] if response.choices else None
            usage = response.usage
            return Completion(
                content=(choice.message.content or "") if choice else "",
                finish_reason=choice.finish_reason if choice else None,
                prompt_tokens=int(usage.prompt_tokens) if usage else 0,
                completion_tokens=int(usage.completion_tokens) if usage else 0,
            )
        raise AssertionError("unreachable")

    def judge_all(self, prompts: Sequence[str]) -> dict[str, Completion]:
        """{prompt: answer} for the distinct `prompts`, `concurrency` at a time. The first
        error stops the run: no new request starts, those in flight finish (and are cached),
        and the error is raised."""
        unique = list(dict.fromkeys(prompts))
        failed = threading.Event()

        def task(prompt: str) -> Completion | None:
            if failed.is_set():
                return None
            try:
                return self.judge(prompt)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = [pool.submit(task, prompt) for prompt in unique]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()
        return {prompt: future.result() for prompt, future in zip(unique, futures, strict=True)}
