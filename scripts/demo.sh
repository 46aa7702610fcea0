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

step "printf 'POST,/api/me?ts=1700000000' | olm-verify --token \"\$token\""
printf 'POST,/api/me?ts=1700000000' | olm-verify --token "$token"

step "a token for another challenge does not verify"
if printf 'POST,/api/me?ts=1700000001' | olm-verify --token "$token"; then
  echo "demo: a wrong challenge verified" >&2
  exit 1
fi

if ! command -v curl >/dev/null; then
  echo
  echo "demo: curl is not installed; skipping the stand-in for ollama.com"
  echo "demo: done"
  exit 0
fi

step "olm-verify --serve 127.0.0.1:0 --stand-in --authorized-keys \$HOME/authorized_keys &"
olm-verify --serve 127.0.0.1:0 --stand-in --authorized-keys "$HOME/authorized_keys" \
  >"$HOME/stand-in.url" 2>"$HOME/stand-in.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$HOME"' EXIT
for _ in $(seq 100); do
  [ -s "$HOME/stand-in.url" ] && break
  sleep 0.05
done
base=$(head -n1 "$HOME/stand-in.url")
[ -n "$base" ] || { echo "demo: the stand-in did not start" >&2; cat "$HOME/stand-in.log" >&2; exit 1; }
echo "$base   (a local stand-in for https://ollama.com)"
me() { olm-sign -X POST /api/me --base "$base" --format curl | curl -sS -K - -w ' (HTTP %{http_code})\n'; }

step "olm-sign -X POST /api/me --base \$base --format curl | curl -K -   # not connected yet"
me

step "curl \"\$(olm-connect-url --base \$base --name demo-box)\"   # what the browser does"
curl -sS "$(olm-connect-url --base "$base" --name demo-box </dev/null)"

step "olm-sign -X POST /api/me --base \$base --format curl | curl -K -   # signed in"
me

step "olm-sign -X DELETE /api/user/keys/\$key --base \$base --format curl | curl -K -   # sign out"
key=$(olm-connect-url --base "$base" </dev/null | sed 's/.*key=//')
olm-sign -X DELETE "/api/user/keys/$key" --base "$base" --format curl |
  curl -sS -K - -w ' (HTTP %{http_code})\n'
me

step "the stand-in's log: one line per request, never a token"
cat "$HOME/stand-in.log"

# Sign in and out with olm-whoami and olm-revoke.
export OLLAMA_CLOUD_BASE_URL=$base

step "curl \"\$(olm-connect-url --name demo-box)\"   # connect the key again"
curl -sS "$(olm-connect-url --name demo-box </dev/null)"
echo

step "olm-whoami   # signed in: exit 0"
olm-whoami

step "cp ~/.ollama/id_ed25519 ~/old.key; olm-revoke   # sign out, remove the key"
cp "$HOME/.ollama/id_ed25519" "$HOME/old.key"
olm-revoke

step "olm-whoami   # no key here any more: exit 1"
if olm-whoami; then
  echo "demo: olm-whoami succeeded after olm-revoke" >&2
  exit 1
else
  echo "(exit $?)"
fi

step "olm-whoami -k ~/old.key   # the stand-in forgot the old key: exit 1"
if olm-whoami -k "$HOME/old.key"; then
  echo "demo: the revoked key is still signed in" >&2
  exit 1
else
  echo "(exit $?)"
fi
echo
echo "demo: done"
