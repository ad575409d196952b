"""Download problems as one line that says what to do (the token never appears)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from reflectchat.core.errors import NetworkError
from reflectchat.core.models.hub.settings import has_token, hub_endpoint, import_huggingface_hub

if TYPE_CHECKING:
    from reflectchat.core.models.hub.plan import Target


class HubError(NetworkError):
    """A download problem, as one line that says what to do.

    ``kind``: spec (a spec that cannot be pulled), not_found (no such repo/file/quantization),
    auth (gated or private: a token is missing or refused), offline (no network, or
    HF_HUB_OFFLINE), network (the Hub failed mid-way), disk, checksum, invalid (not a usable
    GGUF).
    """

    def __init__(self, message: str, kind: str = "network") -> None:
        super().__init__(" ".join(message.split()))
        self.kind = kind


def offline_error(target: Target, why: str) -> HubError:
    return HubError(
        f"cannot reach the Hugging Face Hub ({why}) and {target.display} is not in the Hugging "
        f"Face cache: run reflectchat models pull {target.spec} on a connected machine",
        "offline",
    )


def raise_offline(target: Target, why: str) -> NoReturn:
    raise offline_error(target, why)


def auth_error(target: Target, *, gated: bool, refused: bool = False) -> HubError:
    page = f"{hub_endpoint()}/{target.repo}"
    if refused:
        return HubError(
            f"the Hugging Face Hub refused the token in HF_TOKEN for {target.repo}: check that "
            "it is valid and has read access, or unset it",
            "auth",
        )
    if has_token():
        return HubError(
            f"{target.repo} is gated and this token has no access yet: accept the model's terms "
            f"at {page}, or set HF_TOKEN to a token of an account that has",
            "auth",
        )
    what = "is gated" if gated else "is gated or private"
    return HubError(
        f"{target.repo} {what}: accept its terms at {page}, then set HF_TOKEN to a read "
        f"token from {hub_endpoint()}/settings/tokens",
        "auth",
    )


def translate(exc: BaseException, target: Target, path: str | None = None) -> HubError:
    """huggingface-hub and httpx errors as one HubError line (the token never appears)."""
    import httpx2

    import_huggingface_hub()
    from huggingface_hub import errors

    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return offline_error(target, "HF_HUB_OFFLINE is set")
    if isinstance(exc, errors.GatedRepoError):
        return auth_error(target, gated=True)
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        message = (exc.response.headers.get("X-Error-Message") or "") if status else ""
        if status == 401 and "invalid credentials" in message.lower() and has_token():
            return auth_error(target, gated=False, refused=True)
        if isinstance(exc, errors.RepositoryNotFoundError):
            if status == 404 or not status:
                return HubError(
                    f"no repository {target.repo} on the Hugging Face Hub: check the spec "
                    f"'{target.spec}'",
                    "not_found",
                )
            return auth_error(target, gated=False, refused=has_token() and status == 401)
        if isinstance(exc, (errors.RemoteEntryNotFoundError, errors.RevisionNotFoundError)):
            what = f"no file {path}" if path else "no such file"
            return HubError(
                f"{target.repo} has {what}: check the spec '{target.spec}'", "not_found"
            )
        if status in (401, 403):
            return auth_error(target, gated=False, refused=has_token())
        if status == 404:
            return HubError(
                f"not found on the Hugging Face Hub: {target.repo}"
                + (f"/{path}" if path else "")
                + f"; check the spec '{target.spec}'",
                "not_found",
            )
        return HubError(f"the Hugging Face Hub answered HTTP {status}; try again later", "network")
    if isinstance(exc, errors.HFValidationError):
        return HubError(f"'{target.repo}' is not a valid repository name: {exc}", "spec")
    if isinstance(exc, httpx2.TooManyRedirects):
        try:
            host = host_of(str(exc.request.url))
        except RuntimeError:  # raised by huggingface-hub itself, without the request
            host = host_of(hub_endpoint())
        return HubError(
            f"{host} redirects in a loop (too many redirects): check HF_ENDPOINT "
            f"({hub_endpoint()}) and any proxy in between, or try again later",
            "network",
        )
    if isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.UnsupportedProtocol)):
        return offline_error(target, f"no connection to {hub_endpoint()}")
    if isinstance(exc, httpx2.TimeoutException):
        return offline_error(target, f"no answer from {hub_endpoint()} in time")
    if isinstance(exc, (httpx2.RequestError, ConnectionError)):
        return HubError(f"the connection to the Hub failed: {type(exc).__name__}: {exc}", "network")
    if isinstance(exc, OSError):  # e.g. http_get's "Consistency check failed" on a short file
        detail = exc.strerror or (str(exc).splitlines() or [""])[0]
        return HubError(f"{type(exc).__name__}: {detail}", "network")
    raise exc  # not a download problem but a bug: keep its traceback for --debug


def host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2] or url
