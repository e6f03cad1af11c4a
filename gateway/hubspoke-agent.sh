#!/bin/bash
# hubspoke-agent: converges this gateway's tunnels on the desired state that the program publishes in
# SSM Parameter Store, in the gateway's own region: under $HUBSPOKE_PARAMETER_PATH, per tunnel end,
#   <path>/<tunnel>/conf      the libreswan conn, rendered by the program (String)
#   <path>/<tunnel>/secrets   the libreswan secrets line with the pre-shared key (SecureString)
# The agent never renders libreswan syntax itself: it checks what it fetched, writes it atomically to
# $HUBSPOKE_IPSEC_D, and tells pluto about the difference.
#
#   hubspoke-agent --boot   hubspoke-agent-boot.service, before ipsec.service: fetch (a few tries) and
#                           write files; never touches pluto. If the fetch fails, ipsec starts from the
#                           last good files on disk.
#   hubspoke-agent          hubspoke-agent.timer, about every minute: fetch and converge pluto:
#                             a new tunnel is added and brought up;
#                             a changed conn is replaced and re-established;
#                             a changed key is reread at once (the running SA stays up) and the tunnel
#                             re-authenticated HUBSPOKE_REAUTH_DELAY seconds later, when the peer's agent
#                             must have the new key too;
#                             a removed tunnel is deleted together with its secrets;
#                             every other tunnel is untouched (no pluto restart, no new IKE SA).
#                           A run with nothing to do does nothing and logs nothing.
# Faults stay local: if the listing fails, nothing changes; a tunnel whose parameters are missing or
# invalid is left out (a running one keeps its last good files) and reported in $HUBSPOKE_STATE_DIR/left-out;
# hubspoke-health reports every desired tunnel, so a left-out one shows as down.
#
# Settings: the env file $HUBSPOKE_ENV (on the gateway /etc/hubspoke-vpn/gateway.env, rendered by the
# program from gateway/contract.ts). The lab and the tests also set HUBSPOKE_CTLSOCKET (pluto's control
# socket) and HUBSPOKE_AWS_ARGS (e.g. --endpoint-url of a local Parameter Store).
set -u -o pipefail
umask 077

# shellcheck disable=SC1090
. "${HUBSPOKE_ENV:-/etc/hubspoke-vpn/gateway.env}" || { echo "hubspoke-agent: cannot read its settings" >&2; exit 1; }
mode=run
case "${1:-}" in
  --boot) mode=boot ;;
  "") ;;
  *) echo "usage: hubspoke-agent [--boot]" >&2; exit 2 ;;
esac

state=$HUBSPOKE_STATE_DIR
path=${HUBSPOKE_PARAMETER_PATH%/}
mkdir -p "$state" "$HUBSPOKE_IPSEC_D"
exec 9>"$state/lock"
flock -w 120 9 || { echo "hubspoke-agent: another run holds $state/lock" >&2; exit 1; }

log() { echo "hubspoke-agent: $*" >&2; }
# Bounded calls: a hung endpoint must not hold the boot (or the lock) for minutes.
export AWS_RETRY_MODE=${AWS_RETRY_MODE:-standard} AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-2}
# shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
ssm() { aws ssm "$@" --region "$HUBSPOKE_AWS_REGION" --cli-connect-timeout 5 --cli-read-timeout 15 ${HUBSPOKE_AWS_ARGS:-}; }
whack() { ipsec whack ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} "$@"; }
addconn() { ipsec addconn --config "$HUBSPOKE_IPSEC_CONF" ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} "$@"; }
# Writes stdin to a file beside the target, then renames it: pluto never reads a half-written file.
write_file() {
  local file=$1 mode=$2
  cat >"$file.tmp" && chmod "$mode" "$file.tmp" && mv -f "$file.tmp" "$file"
}
# Why a conn from Parameter Store is refused, or nothing: exactly one `conn <tunnel>`, and only the keys
# the program writes (no leftupdown= or the like: write access to a parameter must not run code here);
# then libreswan's own parser, on the conn alone, before it can replace a good file.
conn_problem() {
  local t=$1 conf=$2 line key staged
  [ "$(grep -c '^conn ' <<<"$conf")" = 1 ] && grep -qx "conn $t" <<<"$conf" || { echo "it does not hold exactly the conn $t"; return; }
  while IFS= read -r line; do
    [[ -z ${line//[[:space:]]/} || $line =~ ^[[:space:]]*# || $line == "conn $t" ]] && continue
    [[ $line =~ ^[[:space:]]+([a-z0-9-]+)= ]] || { echo "it has a line that is not a setting"; return; }
    key=${BASH_REMATCH[1]}
    [[ " $HUBSPOKE_CONN_KEYS " == *" $key "* ]] || { echo "it sets $key, which hubspoke-vpn never writes"; return; }
  done <<<"$conf"
  staged=$state/staging
  mkdir -p "$staged"
  printf '%s\n' "$conf" >"$staged/$t.conf"
  printf 'config setup\n\ninclude %s\n' "$staged/$t.conf" >"$staged/ipsec.conf"
  ipsec addconn --checkconfig --config "$staged/ipsec.conf" >"$staged/check.log" 2>&1 \
    || echo "libreswan refuses it: $(tr '\n' ' ' <"$staged/check.log")"
  rm -f "$staged/$t.conf" "$staged/ipsec.conf" "$staged/check.log"
}

# 1. The listing: every parameter under this gateway's path, with its version and value
# (GetParametersByPath, which the CLI pages through). Without a complete listing nothing is changed.
attempts=1
[ "$mode" = boot ] && attempts=$HUBSPOKE_BOOT_ATTEMPTS
# One call a run: the values come with the listing (decrypted), as JSON, since a conn spans lines;
# each becomes one line `<name> <version> <value, base64>`.
for ((i = 1; ; i++)); do
  if raw=$(ssm get-parameters-by-path --path "$path" --recursive --with-decryption --output json 2>"$state/listing.err"); then
    # The answer holds keys: never logged; only jq's own complaint is.
    listing=$(jq -r '.Parameters[] | [.Name, (.Version | tostring), (.Value | @base64)] | join(" ")' <<<"$raw" 2>&1) && break
    problem="unreadable answer: ${listing//$'\n'/ }"
  else
    problem=$(tr '\n' ' ' <"$state/listing.err")
  fi
  unset raw
  log "listing $path in $HUBSPOKE_AWS_REGION failed (attempt $i of $attempts): $problem"
  if [ "$i" -ge "$attempts" ]; then
    [ "$mode" = boot ] && { log "starting from the last good files in $HUBSPOKE_IPSEC_D"; exit 0; }
    exit 1
  fi
  sleep $((2 ** i))
done

declare -A version=() value=() previous=() desired=() left_out=() was_left_out=()
drain=""
while read -r name ver encoded; do
  # In a site with a standby: an operator's (or the program's handover hook's) drain request.
  [ "$name" = "${HUBSPOKE_DRAIN_PARAMETER:-}" ] && { drain=$(base64 -d <<<"$encoded"); continue; }
  [[ $name =~ ^$path/($HUBSPOKE_TUNNEL_NAME)/(conf|secrets)$ ]] || continue
  version[$name]=$ver
  value[$name]=$encoded
  desired[${BASH_REMATCH[1]}]=1
done <<<"$listing"
if [ -f "$state/$HUBSPOKE_STATE_VERSIONS" ]; then
  while read -r name ver; do previous[$name]=$ver; done <"$state/$HUBSPOKE_STATE_VERSIONS"
fi
if [ -f "$state/$HUBSPOKE_STATE_LEFT_OUT" ]; then
  while read -r t _; do was_left_out[$t]=1; done <"$state/$HUBSPOKE_STATE_LEFT_OUT"
fi
managed=()
for f in "$HUBSPOKE_IPSEC_D"/*.conf; do
  [ -f "$f" ] && grep -qF "$HUBSPOKE_MANAGED_MARKER" "$f" && managed+=("$(basename "$f" .conf)")
done
if [ ${#desired[@]} -eq 0 ] && [ ${#managed[@]} -gt 0 ]; then
  # A gateway always has a tunnel: an empty listing is a wrong path or a broken store, not a removal.
  log "no tunnel under $path in $HUBSPOKE_AWS_REGION; refusing to remove every tunnel (${managed[*]})"
  exit 1
fi

# 2. Per desired tunnel whose parameters changed since the last run: fetch, check, write.
added=() replaced=() rekeyed=() removed=() failed=no
for t in $(printf '%s\n' "${!desired[@]}" | sort); do
  conf_name=$path/$t/conf secrets_name=$path/$t/secrets
  conf_file=$HUBSPOKE_IPSEC_D/$t.conf secrets_file=$HUBSPOKE_IPSEC_D/$t.secrets
  cv=${version[$conf_name]:--} sv=${version[$secrets_name]:--}
  if [ "$cv" = "${previous[$conf_name]:-}" ] && [ "$sv" = "${previous[$secrets_name]:-}" ] \
     && { [ -f "$conf_file" ] || [ -n "${was_left_out[$t]:-}" ]; }; then
    [ -n "${was_left_out[$t]:-}" ] && left_out[$t]=$(awk -v t="$t" '$1 == t { $1 = ""; print substr($0, 2) }' "$state/$HUBSPOKE_STATE_LEFT_OUT")
    continue
  fi
  reason=""
  if [ "$cv" = - ]; then
    reason="its conf parameter $conf_name is missing"
  elif [ "$sv" = - ]; then
    reason="its secrets parameter $secrets_name is missing"
  else
    conf=$(base64 -d <<<"${value[$conf_name]}") secrets=$(base64 -d <<<"${value[$secrets_name]}")
    problem=$(conn_problem "$t" "$conf")
    if [ -n "$problem" ]; then
      reason="its conf parameter is refused: $problem"
    elif [[ ! $secrets =~ $HUBSPOKE_SECRETS_LINE ]] || [ ${#BASH_REMATCH[1]} -lt "$HUBSPOKE_PSK_MIN_LENGTH" ]; then
      # Never log the value: it may be a key.
      reason="its secrets parameter does not hold a usable key (at least $HUBSPOKE_PSK_MIN_LENGTH characters of $HUBSPOKE_PSK_CHARACTERS)"
    fi
  fi
  # Checked and refused (or missing): recorded, so that it is reported once per change, not every run.
  previous[$conf_name]=$cv previous[$secrets_name]=$sv
  if [ -n "$reason" ]; then
    if [ -f "$conf_file" ]; then reason="$reason; keeping its last good files"; else reason="$reason; left out"; fi
    left_out[$t]=$reason
    log "$t: $reason"
    continue
  fi
  if [ ! -f "$conf_file" ]; then
    added+=("$t")
    date +%s >"$state/$t.$HUBSPOKE_STATE_ADDED_AT"
  elif [ "$(cat "$conf_file")" != "$conf" ]; then
    replaced+=("$t")
  elif [ ! -f "$secrets_file" ] || [ "$(cat "$secrets_file")" != "$secrets" ]; then
    rekeyed+=("$t")
  else
    continue
  fi
  printf '%s\n' "$secrets" | write_file "$secrets_file" 600 && printf '%s\n' "$conf" | write_file "$conf_file" 644 \
    || { log "$t: cannot write its files in $HUBSPOKE_IPSEC_D"; exit 1; }
done
for t in "${managed[@]}"; do
  [ -n "${desired[$t]:-}" ] || removed+=("$t")
done

# 3. State for the next run and for hubspoke-health (which reports every desired tunnel).
for name in "${!previous[@]}"; do
  [[ $name =~ ^$path/($HUBSPOKE_TUNNEL_NAME)/ ]] && [ -n "${desired[${BASH_REMATCH[1]}]:-}" ] && echo "$name ${previous[$name]}"
done | sort | write_file "$state/$HUBSPOKE_STATE_VERSIONS" 644
printf '%s\n' "${!desired[@]}" | sort | write_file "$state/$HUBSPOKE_STATE_TUNNELS" 644
for t in "${!left_out[@]}"; do echo "$t ${left_out[$t]}"; done | sort | write_file "$state/$HUBSPOKE_STATE_LEFT_OUT" 644

# The drain request, for the failover script (which hands the site over, and then never takes it).
if [ -n "${HUBSPOKE_DRAIN_PARAMETER:-}" ]; then
  drained_file=$state/$HUBSPOKE_STATE_DRAINED was=no now=no
  [ -f "$drained_file" ] && was=yes
  [ "$drain" = "$HUBSPOKE_DRAINED" ] && now=yes
  [ -z "$drain" ] || [ "$now" = yes ] || log "$HUBSPOKE_DRAIN_PARAMETER holds '$drain', not '$HUBSPOKE_DRAINED': not drained"
  if [ "$now" != "$was" ]; then
    if [ "$now" = yes ]; then : >"$drained_file"; log "drained ($HUBSPOKE_DRAIN_PARAMETER)"; else rm -f "$drained_file"; log "no longer drained"; fi
    # Wake the failover script (it sleeps on this FIFO); opened read-write, so this never blocks.
    [ -p "$HUBSPOKE_RUN_DIR/tick" ] && { exec 6<>"$HUBSPOKE_RUN_DIR/tick" && echo >&6; exec 6>&-; }
  fi
fi

# 4. pluto: only the tunnels that changed. At boot pluto is not running yet and loads the files itself.
running=no
[ "$mode" = run ] && status=$(whack --status 2>/dev/null) && running=yes
for t in "${removed[@]}"; do
  [ "$running" = yes ] && whack --name "$t" --delete >/dev/null 2>&1
  rm -f "$HUBSPOKE_IPSEC_D/$t.conf" "$HUBSPOKE_IPSEC_D/$t.secrets" "$state/$t".*
  log "$t: removed (conn deleted, secrets removed)"
done
[ "$running" = yes ] || { [ "$failed" = no ] || exit 1; exit 0; }
if [ $((${#added[@]} + ${#replaced[@]} + ${#rekeyed[@]} + ${#removed[@]})) -gt 0 ]; then
  whack --rereadsecrets
fi
# A desired tunnel with good files that pluto does not have (an earlier add failed) is added too.
for t in $(printf '%s\n' "${!desired[@]}" | sort); do
  [ -f "$HUBSPOKE_IPSEC_D/$t.conf" ] && [[ " ${added[*]} ${replaced[*]} " != *" $t "* ]] && [ -z "${left_out[$t]:-}" ] \
    && ! grep -q "\"$t\":" <<<"$status" && added+=("$t")
done
for t in "${replaced[@]}"; do
  whack --name "$t" --delete >/dev/null 2>&1
done
for t in "${added[@]}" "${replaced[@]}"; do
  if addconn "$t" >/dev/null 2>&1; then
    whack --name "$t" --initiate --asynchronous >/dev/null 2>&1
    if [[ " ${replaced[*]} " == *" $t "* ]]; then log "$t: conn changed: replaced and re-established"; else log "$t: added and initiated"; fi
  else
    log "$t: pluto refused the conn: $(addconn "$t" 2>&1 | tr '\n' ' ')"
    failed=yes
  fi
done
for t in "${rekeyed[@]}"; do
  echo $(($(date +%s) + HUBSPOKE_REAUTH_DELAY)) >"$state/$t.reauth-after"
  log "$t: key changed: secrets reread; re-authenticating in ${HUBSPOKE_REAUTH_DELAY}s"
done
# Due re-authentications: a new IKE SA authenticates with the new key (rekeying the old one, or
# initiating a Child SA over it, would not).
for marker in "$state"/*.reauth-after; do
  [ -f "$marker" ] && [ "$(cat "$marker")" -le "$(date +%s)" ] || continue
  t=$(basename "$marker" .reauth-after)
  rm -f "$marker"
  [ -n "${desired[$t]:-}" ] || continue
  log "$t: re-authenticating with the new key"
  whack --name "$t" --terminate >/dev/null 2>&1
  whack --name "$t" --initiate --asynchronous >/dev/null 2>&1
done
[ "$failed" = no ]
