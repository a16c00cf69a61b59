#!/usr/bin/env bash
# What the browser tests of `fawn serve` need, offline-friendly and idempotent:
#   - Debian's `chromium` (the tests drive /usr/bin/chromium; no browser is downloaded),
#     plus `ip` (iproute2) and `unshare` (util-linux) to run it in a private network namespace;
#   - the `playwright` Python driver in the project venv (`pip install playwright` only:
#     never `playwright install`, which downloads browsers).
# Without root (and without sudo) the apt step is skipped with a message; the browser
# tests then skip with the reason.
# Usage: scripts/setup_browser.sh [VENV_DIR]   (default: <repo>/.venv)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv}"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

if ((${#missing[@]})); then
    echo "setup_browser: installing ${missing[*]}"
    if as_root apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; then
        :
    else
        echo "setup_browser: could not install ${missing[*]} (not root?): browser tests will skip" >&2
    fi
fi

if [[ -x "$venv/bin/python" ]]; then
    if ! "$venv/bin/python" -c "import playwright.sync_api" >/dev/null 2>&1; then
        echo "setup_browser: installing the playwright driver into $venv"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/python" -m pip install --quiet "playwright>=1.50"
    fi
else
    echo "setup_browser: no venv at $venv (run make setup first)" >&2
fi

if command -v chromium >/dev/null 2>&1; then
    echo "setup_browser: $(chromium --version 2>/dev/null | tail -n 1)"
fi
