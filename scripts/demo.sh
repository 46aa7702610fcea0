#!/usr/bin/env bash
# make demo: the main job end to end, offline, in a temporary HOME.
# Never touches the real ~/.ollama.
set -euo pipefail
bin=${OLM_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug}
export PATH="$bin:$PATH"
HOME=$(mktemp -d -t olm-demo-XXXXXX)
export HOME
trap 'rm -rf "$HOME"' EXIT
unset OLLAMA_CLOUD_BASE_URL OLLAMA_API_KEY OLM_BACKEND
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "demo HOME: $HOME (temporary)"
mkdir -p "$HOME/.ollama"

step olm-keygen -o "\$HOME/.ollama/id_ed25519"
olm-keygen -o "$HOME/.ollama/id_ed25519"

step olm-store status
olm-store status

step olm-connect-url --name demo-box
olm-connect-url --name demo-box </dev/null

step olm-sign -X POST /api/me --ts 1700000000 --format curl
olm-sign -X POST /api/me --ts 1700000000 --format curl

step "printf 'POST,/api/me?ts=1700000000' | olm-sign"
token=$(printf 'POST,/api/me?ts=1700000000' | olm-sign)
echo "$token"

step "check the token with libauth"
"$bin/examples/check_token" "$token" 'POST,/api/me?ts=1700000000'

step "a token for another challenge does not verify"
if "$bin/examples/check_token" "$token" 'POST,/api/me?ts=1700000001'; then
  echo "demo: a wrong challenge verified" >&2
  exit 1
fi
echo
echo "demo: done"
