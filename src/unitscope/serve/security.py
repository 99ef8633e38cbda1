"""The server's secret and the headers of every response.

One token per server (printed once at start, or read from ``--token-file``), compared in constant time; a
browser keeps it in an HttpOnly SameSite=Strict cookie. Pages may run only the inline scripts unitscope's own
templates hold (by hash), never a script a run folder could add.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from unitscope.errors import UsageError

COOKIE = "unitscope_serve"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")
SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
REPORT_TEMPLATES = Path(__file__).resolve().parents[1] / "report" / "templates"
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
                "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin"}


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line): 32-128 URL-safe characters."""
    try:
        text = path.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--token-file {path} cannot be read ({err}); give a text file holding one token") from None
    token = text[0].strip() if text else ""
    if not TOKEN_PATTERN.fullmatch(token):
        raise UsageError(f"--token-file {path} must hold one token of 32-128 letters, digits, '-' or '_' on its "
                         "first line; e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE`")
    return token


def same_token(given: str | None, token: str) -> bool:
    """Whether ``given`` is the server's token (constant time)."""
    return given is not None and TOKEN_PATTERN.fullmatch(given) is not None and hmac.compare_digest(
        given.encode(), token.encode())


def template_script_hashes(folder: Path = REPORT_TEMPLATES) -> tuple[str, ...]:
    """CSP hashes of the static inline scripts of unitscope's own page templates (the report's filter)."""
    hashes = []
    for path in sorted(folder.glob("*.html")):
        for body in SCRIPT.findall(path.read_text(encoding="utf-8")):
            if "{{" not in body and "{%" not in body:
                digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
                hashes.append(f"'sha256-{digest}'")
    return tuple(hashes)


def headers(script_hashes: tuple[str, ...] = (), cache: str = "no-store") -> dict[str, str]:
    """Every response's headers: a CSP that lets nothing load from elsewhere and runs only ``script_hashes``."""
    scripts = " ".join(script_hashes) if script_hashes else "'none'"
    csp = (f"default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src {scripts}; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return {**BASE_HEADERS, "Content-Security-Policy": csp, "Cache-Control": cache}
