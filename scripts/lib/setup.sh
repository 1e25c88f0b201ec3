# Shared by scripts/serve, scripts/test and .ci/run: install what trackd needs, and skip
# each install when what is installed already matches the file that pins it (a stamp
# holding that file's hash), so a second start costs no pip or npm run.
# Sourced with the working directory at the repository root.

_stamp_matches() {  # _stamp_matches STAMP_FILE CONTENT
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

# ensure_python EXTRA: ./.venv with trackd installed (editable) with the given extra.
ensure_python() {
  local extra=$1 python=${PYTHON:-python3} want
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  want="$extra $(sha256sum pyproject.toml | cut -d' ' -f1)"
  # A stamp for the dev extra covers the embedded one too (dev includes it).
  if _stamp_matches .venv/.trackd-installed "$want" \
     || { [ "$extra" = embedded ] \
          && _stamp_matches .venv/.trackd-installed "dev ${want#* }"; }; then
    return 0
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
  printf '%s' "$want" > .venv/.trackd-installed
}

# ensure_node: ./node_modules exactly as package-lock.json pins it (buf, the TypeScript stub
# generator and gRPC client, the Databuddy SDK).
ensure_node() {
  local want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  _stamp_matches node_modules/.trackd-installed "$want" && return 0
  if ! command -v npm >/dev/null; then
    echo "setup: npm (Node.js >= 18) is needed for the node tools in package.json" >&2
    return 1
  fi
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s' "$want" > node_modules/.trackd-installed
}

# ensure_chromium: Debian's chromium for the /docs browser test, installed only when it is
# missing and we are root (as in CI); otherwise that test says why it is skipped.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: chromium is not installed (apt-get install chromium as root);" \
         "the /docs browser test will be skipped" >&2
    return 0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
    >/dev/null
}
