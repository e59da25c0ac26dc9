#!/usr/bin/env bash
# Make the Home Assistant venv the tests use: homeassistant==2025.4.4 on pyenv's Python 3.13.0,
# plus what HA would otherwise download at first start (frontend, recorder, mqtt requirements,
# pinned by HA's own constraints) and the MariaDB/PostgreSQL drivers for recorder tests.
# Idempotent; prints the venv path. Override with PWSYNC_HA_VENV / PWSYNC_HA_PYTHON.
set -euo pipefail
VERSION=2025.4.4
VENV=${PWSYNC_HA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pwsync/ha-$VERSION}
PY=${PWSYNC_HA_PYTHON:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/3.13.0/bin/python}
if [ ! -x "$VENV/bin/hass" ]; then
    [ -x "$PY" ] || { echo "no Python 3.13.0 at $PY (set PWSYNC_HA_PYTHON)" >&2; exit 1; }
    echo "creating $VENV with $("$PY" -V) and homeassistant==$VERSION (takes a few minutes)" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q "homeassistant==$VERSION" >&2
fi
SITE=$("$VENV/bin/python" -c 'import homeassistant,os;print(os.path.dirname(homeassistant.__file__))')
REQS=$("$VENV/bin/python" - "$SITE" <<'PYEOF'
import json, sys
site = sys.argv[1]
reqs = []
for dom in ("frontend", "recorder", "mqtt"):
    reqs += json.load(open(f"{site}/components/{dom}/manifest.json")).get("requirements", [])
print(" ".join(reqs))
PYEOF
)
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$SITE/package_constraints.txt" $REQS pymysql psycopg2-binary >&2
echo "$VENV"
