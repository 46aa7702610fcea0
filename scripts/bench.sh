#!/usr/bin/env bash
# make bench: olm's speed, side by side with what it is measured against, in
# one run on one machine. Prints a table and writes it to bench-results/.
#
#   per call  200 × `olm-sign -k K < challenge` against 200 ×
#             `ssh-keygen -Y sign -f K -n ollama < challenge` (interleaved)
#   bulk      `olm-sign --lines` over N challenges against the library's own
#             rate (Criterion, libauth/benches/sign.rs, the same challenges)
#   verify    `olm-verify --lines` over N `TOKEN<TAB>CHALLENGE` lines against
#             the library's single-verify rate (libauth/benches/verify.rs),
#             and `olm-verify --serve` under wrk on 127.0.0.1
#   start-up  peak RSS and binary size of each tool
#
# Everything runs in a temporary folder with a fresh key; nothing touches
# ~/.ollama. Environment: OLM_BENCH_N (challenges, default 200000),
# OLM_BENCH_CALLS (processes per side, default 200), OLM_BENCH_SAMPLE
# (lines re-signed one process each, default 2000), OLM_BENCH_RUNS (runs of
# each bulk command, default 5; the best wall time and the median CPU time count).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

N=${OLM_BENCH_N:-200000}
CALLS=${OLM_BENCH_CALLS:-200}
SAMPLE=${OLM_BENCH_SAMPLE:-2000}
RUNS=${OLM_BENCH_RUNS:-5}
CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-$root/target}
rel=$target/release

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# --- tools the bench needs ---------------------------------------------------
need_pkgs=()
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v wrk >/dev/null || need_pkgs+=(wrk)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
command -v awk >/dev/null || need_pkgs+=(gawk)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    die "missing tools; install the Debian packages: ${need_pkgs[*]}"
  fi
fi

# --- build -------------------------------------------------------------------
say "building release binaries and bench helpers"
"$CARGO" build --release --workspace --bins --examples >&2

work=$(mktemp -d -t olm-bench-XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

key=$work/key
"$rel/olm-keygen" -o "$key" >/dev/null # also writes key.pub, which ssh-keygen reads
printf 'POST,/api/me?ts=1700000000' >"$work/challenge"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "POST,/api/me?ts=%d\n", 1700000000 + i }' \
  >"$work/challenges"

# Runs a command RUNS times (stdin from $1, stdout to /dev/null); prints the
# best wall time and the median CPU time (user + system), in seconds. On a
# shared machine the best run is the one least slowed by the neighbours; it
# is compared with Criterion's best sample, so both sides are best cases.
run_times() {
  local input=$1 walls=() cpus=() i s e
  shift
  for ((i = 0; i < RUNS; i++)); do
    s=$(date +%s%N)
    /usr/bin/time -f '%U %S' -o "$work/cpu" "$@" <"$input" >/dev/null
    e=$(date +%s%N)
    walls+=("$(((e - s) / 1000))")
    cpus+=("$(awk '{ printf "%d\n", ($1 + $2) * 1e6 }' "$work/cpu")")
  done
  printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | sort -n | awk 'NR == 1 { printf "%.6f", $1 / 1e6 }')" \
    "$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{ t[NR] = $1 } END { printf "%.6f", t[int((NR + 1) / 2)] / 1e6 }')"
}

# Criterion's best sample, in ns per iteration (one signature or verification).
criterion_best_ns() {
  local f=$target/criterion/$1/new/sample.json
  [[ -f $f ]] || die "no Criterion samples at $f"
  tr -d '{}"' <"$f" | tr ']' '\n' | awk -F'[' '
    /iters:/ { n = split($2, it, ",") }
    /times:/ { split($2, tm, ",") }
    END { best = -1; for (i = 1; i <= n; i++) { v = tm[i] / it[i]; if (best < 0 || v < best) best = v }; printf "%.3f\n", best }'
}

# Criterion's median time per iteration (one signature or verification), ns.
criterion_ns() {
  local f=$target/criterion/$1/new/estimates.json
  [[ -f $f ]] || die "no Criterion estimate at $f"
  sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$f"
}

calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }
verdict() { awk "BEGIN { print (($1) ? \"met\" : \"MISSED\") }"; }
# When wall time and CPU time disagree (a busy machine), say so.
cpu_note() {
  local wall cpu
  wall=$(verdict "$1")
  cpu=$(verdict "$2")
  [[ $wall == "$cpu" ]] || printf ' (on CPU time: %s)' "$cpu"
}

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

# --- per call ----------------------------------------------------------------
say "per call: $CALLS × olm-sign against $CALLS × ssh-keygen -Y sign (interleaved)"
ssh-keygen -Y sign -f "$key" -n ollama <"$work/challenge" >/dev/null 2>&1 ||
  die "ssh-keygen -Y sign does not work here"
# Three rounds; the one least disturbed by the neighbours (smallest sum of
# both totals) counts, as the best run counts in bulk.
best=
for round in 1 2 3; do
  timed=$("$rel/examples/bench_spawn" "$CALLS" "$work/challenge" \
    "$rel/olm-sign" -k "$key" ::: ssh-keygen -Y sign -f "$key" -n ollama)
  timed=$(echo $timed)
  sum=$(awk '{ print $1 + $4 }' <<<"$timed")
  if [[ -z $best ]] || awk "BEGIN { exit !($sum < $best_sum) }"; then
    best=$timed best_sum=$sum
  fi
done
read -r olm_total olm_median olm_fail ssh_total ssh_median ssh_fail <<<"$best"
((olm_fail == 0 && ssh_fail == 0)) || die "some timed calls failed (olm-sign $olm_fail, ssh-keygen $ssh_fail)"
ratio=$(calc %.3f "$olm_total / $ssh_total")
row "per call: $CALLS × \`olm-sign -k K < challenge\`, wall (best of 3 rounds)" \
  "$(calc %.3f "$olm_total") s ($(calc %.2f "$olm_median * 1000") ms median)" \
  "$(calc %.3f "$ssh_total") s ($(calc %.2f "$ssh_median * 1000") ms median), \`ssh-keygen -Y sign\`" \
  "$ratio" "≤ 0.40" "$(verdict "$ratio <= 0.4")"

# --- bulk signing ------------------------------------------------------------
say "bulk: olm-sign --lines over $N challenges ($RUNS runs)"
read -r lines_s lines_cpu <<<"$(run_times "$work/challenges" "$rel/olm-sign" -k "$key" --lines)"
say "raw library rate: Criterion over the same challenges"
OLM_BENCH_KEY=$key OLM_BENCH_CHALLENGES=$work/challenges \
  "$CARGO" bench -q -p libauth --bench sign >&2
lib_ns=$(criterion_best_ns sign/token)
lib_cpu_ns=$(criterion_ns sign-cpu/token)
ed_ns=$(criterion_best_ns sign/ed25519)
cli_rate=$(calc %.0f "$N / $lines_s")
lib_rate=$(calc %.0f "1e9 / $lib_ns")
ratio=$(calc %.3f "$cli_rate / $lib_rate")
cpu_ratio=$(calc %.3f "($N / $lines_cpu) / (1e9 / $lib_cpu_ns)")
row "bulk: \`olm-sign --lines\`, $N challenges" \
  "$cli_rate tokens/s (best of $RUNS: $(calc %.2f "$lines_s") s); per CPU second $(calc %.0f "$N / $lines_cpu")" \
  "$lib_rate tokens/s, library \`Signer::sign_into\` (Criterion, best sample); per CPU second $(calc %.0f "1e9 / $lib_cpu_ns"); Ed25519 \`sign\` alone $(calc %.0f "1e9 / $ed_ns")/s" \
  "$ratio (CPU $cpu_ratio)" "≥ 0.85" "$(verdict "$ratio >= 0.85")$(cpu_note "$ratio >= 0.85" "$cpu_ratio >= 0.85")"

say "bulk output against signing each line alone"
"$rel/olm-sign" -k "$key" --lines <"$work/challenges" >"$work/tokens"
"$rel/examples/sign_each" "$key" "$work/challenges" >"$work/tokens.each"
same_all=no
cmp -s "$work/tokens" "$work/tokens.each" && same_all=yes
step=$((N / SAMPLE > 0 ? N / SAMPLE : 1))
awk -v s="$step" '(NR - 1) % s == 0' "$work/challenges" >"$work/sample.challenges"
awk -v s="$step" '(NR - 1) % s == 0' "$work/tokens" >"$work/sample.tokens"
checked=0 differ=0
while IFS= read -r challenge <&3 && IFS= read -r want <&4; do
  got=$(printf '%s' "$challenge" | "$rel/olm-sign" -k "$key")
  checked=$((checked + 1))
  [[ $got == "$want" ]] || differ=$((differ + 1))
done 3<"$work/sample.challenges" 4<"$work/sample.tokens"
ok=no
[[ $same_all == yes && $differ == 0 ]] && ok=yes
row "bulk output = each line signed alone" \
  "all $N lines vs library one-token path: $([[ $same_all == yes ]] && echo identical || echo DIFFERENT)" \
  "$checked lines vs one \`olm-sign\` process each: $((checked - differ)) identical" \
  "" "byte for byte" "$([[ $ok == yes ]] && echo met || echo MISSED)"

# --- olm-verify --serve under wrk -------------------------------------------
# Every request carries a fresh token (its own path, ts = now), since the
# server refuses a replayed one: the 200 path. Then one token over and over:
# the 401 path (replay refused). wrk's threads take every other token.
serve_bench() {
  local secs=${OLM_BENCH_SERVE_SECONDS:-5} conns=${OLM_BENCH_SERVE_CONNECTIONS:-32}
  local count=${OLM_BENCH_SERVE_TOKENS:-300000} now url out i
  say "serve: olm-verify --serve under wrk -t2 -c$conns -d${secs}s on 127.0.0.1"
  now=$(date +%s)
  awk -v n="$count" -v ts="$now" 'BEGIN { for (i = 0; i < n; i++) printf "/bench/%d?ts=%d\n", i, ts }' >"$work/paths"
  sed 's/^/GET,/' "$work/paths" | "$rel/olm-sign" -k "$key" --lines >"$work/serve-tokens"
  paste "$work/paths" "$work/serve-tokens" >"$work/serve-requests"
  cat >"$work/fresh.lua" <<'LUA'
counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local threads = tonumber(args[2])
  reqs, i = {}, 0
  local k = 0
  for line in io.lines(args[1]) do
    if k % threads == id then
      local path, token = line:match("^([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("GET", path, { ["Authorization"] = token })
    end
    k = k + 1
  end
end
function request()
  i = i + 1
  if i > #reqs then i = 1 end -- replays from here on: refused, counted as non-2xx
  return reqs[i]
end
LUA
  cp "$key.pub" "$work/authorized_keys"
  : >"$work/serve-url"
  "$rel/olm-verify" --serve 127.0.0.1:0 \
    --authorized-keys "$work/authorized_keys" >"$work/serve-url" 2>/dev/null &
  server_pid=$!
  for ((i = 0; i < 100; i++)); do
    url=$(head -1 "$work/serve-url")
    [[ -n $url ]] && break
    sleep 0.1
  done
  [[ -n $url ]] || die "olm-verify --serve did not print its URL"
  out=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$work/fresh.lua" "$url" -- "$work/serve-requests" 2)
  local total non2xx secs_run ok_rate
  total=$(awk '/requests in/ { print $1 }' <<<"$out")
  secs_run=$(awk '/requests in/ { sub(/s,$/, "", $4); print $4 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  non2xx=${non2xx:-0}
  ok_rate=$(calc %.0f "($total - $non2xx) / $secs_run")
  # The 401 path: the first of these tokens again, which the server now refuses.
  local replay
  replay=$(head -1 "$work/serve-requests")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" -H "Authorization: ${replay#*$'\t'}" "$url${replay%%$'\t'*}")
  local refused_rate refused_non2xx refused_total
  refused_total=$(awk '/requests in/ { print $1 }' <<<"$out")
  refused_non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  refused_rate=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
  # Its peak memory, then let it go (SIGTERM: it stops cleanly).
  local rss
  rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
  row "serve: \`olm-verify --serve\`, wrk -t2 -c$conns -d${secs}s, 127.0.0.1, one connection per request" \
    "$ok_rate requests/s answered 200 (fresh tokens; $total requests, $non2xx not 200)" \
    "401 path (one token replayed): $refused_rate requests/s ($refused_non2xx of $refused_total refused)" \
    "" "" ""
  row "serve memory: \`olm-verify --serve\` after both runs" "$rss KiB peak RSS" "" "" "" ""
}

# --- verification ------------------------------------------------------------
if [[ -x $rel/olm-verify ]] && "$rel/olm-verify" --help 2>/dev/null | grep -q -- '--lines'; then
  say "verify: olm-verify --lines over $N lines ($RUNS runs)"
  paste "$work/tokens" "$work/challenges" >"$work/verify-lines"
  "$rel/olm-verify" --lines <"$work/verify-lines" >"$work/verify-out" ||
    die "olm-verify --lines refused the bench's own tokens"
  read -r verify_s verify_cpu <<<"$(run_times "$work/verify-lines" "$rel/olm-verify" --lines)"
  say "raw single-verify rate: Criterion over the same tokens"
  OLM_BENCH_VERIFY=$work/verify-lines "$CARGO" bench -q -p libauth --bench verify >&2
  single_ns=$(criterion_best_ns verify/single)
  single_cpu_ns=$(criterion_ns verify-cpu/single)
  cli_rate=$(calc %.0f "$N / $verify_s")
  lib_rate=$(calc %.0f "1e9 / $single_ns")
  ratio=$(calc %.3f "$cli_rate / $lib_rate")
  cpu_ratio=$(calc %.3f "($N / $verify_cpu) / (1e9 / $single_cpu_ns)")
  row "verify: \`olm-verify --lines\`, $N lines" \
    "$cli_rate tokens/s (best of $RUNS: $(calc %.2f "$verify_s") s); per CPU second $(calc %.0f "$N / $verify_cpu")" \
    "$lib_rate tokens/s, library single verify (Criterion, best sample); per CPU second $(calc %.0f "1e9 / $single_cpu_ns")" \
    "$ratio (CPU $cpu_ratio)" "> 1.00" "$(verdict "$ratio > 1")$(cpu_note "$ratio > 1" "$cpu_ratio > 1")"
  serve_bench
else
  row "verify" "olm-verify --lines is not built on this branch" "" "" "" "skipped"
fi

# --- start-up: peak memory and size ------------------------------------------
say "start-up: peak RSS and binary size"
peak_kb() { /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1 || true; tail -1 "$work/rss"; }
ssh_rss=$(peak_kb ssh-keygen -Y sign -f "$key" -n ollama <"$work/challenge")
ssh_size=$(stat -L -c %s "$(command -v ssh-keygen)")
row "start-up, for scale: \`ssh-keygen -Y sign -f K -n ollama < challenge\`" \
  "" "$ssh_rss KiB peak RSS, $(calc %.0f "$ssh_size / 1024") KiB binary (plus libcrypto)" "" "" ""
for bin in "$rel"/olm-*; do
  [[ -x $bin && ! $bin =~ \.d$ ]] || continue
  name=${bin##*/}
  case $name in
  olm-sign) call="olm-sign -k K < challenge"; rss=$(peak_kb "$bin" -k "$key" <"$work/challenge") ;;
  olm-keygen) call="olm-keygen -y -k K"; rss=$(peak_kb "$bin" -y -k "$key" </dev/null) ;;
  olm-connect-url) call="olm-connect-url < K.pub"; rss=$(peak_kb "$bin" --name bench <"$key.pub") ;;
  olm-verify) call="olm-verify --token T < challenge"
    rss=$(peak_kb "$bin" --token "$(head -1 "$work/tokens")" < <(head -1 "$work/challenges" | tr -d '\n')) ;;
  *) call="$name --version"; rss=$(peak_kb "$bin" --version) ;;
  esac
  row "start-up: \`$call\`" "$rss KiB peak RSS, $(calc %.0f "$(stat -c %s "$bin") / 1024") KiB binary" \
    "" "" "" ""
done
rss=$(peak_kb "$rel/olm-sign" -k "$key" --lines <"$work/challenges")
row "bulk memory: \`olm-sign --lines\`, $N challenges" "$rss KiB peak RSS" "" "" "" ""
if [[ -x $rel/olm-verify ]] && [[ -f $work/verify-lines ]]; then
  rss=$(peak_kb "$rel/olm-verify" --lines <"$work/verify-lines")
  row "bulk memory: \`olm-verify --lines\`, $N lines" "$rss KiB peak RSS" "" "" "" ""
fi

# --- report ------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report() {
  echo "olm bench, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $cpu, $(nproc) CPUs, $(uname -sr), $(rustc --version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| figure | olm | measured against | ratio | target | |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
}
mkdir -p bench-results
report | tee bench-results/latest.txt
cp bench-results/latest.txt "bench-results/$(date -u +%Y%m%dT%H%M%SZ).txt"
echo >&2
echo "written to bench-results/latest.txt" >&2
