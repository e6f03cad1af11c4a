#!/bin/bash
# hubspoke-psk: fetches this gateway's pre-shared keys from SSM Parameter Store and writes one
# libreswan secrets file (mode 0600) per tunnel. Installed by hubspoke-vpn's user data as
# /usr/local/sbin/hubspoke-psk; the keys themselves never travel in user data.
#
#   hubspoke-psk            at boot (hubspoke-psk.service, before ipsec.service): fetch every key,
#                           retrying with backoff until each is valid; never writes an empty key
#   hubspoke-psk --reload   from hubspoke-psk-refresh.timer: fetch again; for each tunnel whose key
#                           changed (rotation), reread secrets at once, and re-authenticate the tunnel
#                           (a new IKE SA, with the new key) once the peer must have the new key too
#
# Why the delay: both ends poll every 5 minutes (plus up to 30 s jitter) and a rotation updates both
# parameters in the same `pulumi up`. Rereading secrets keeps the running SA up; re-authenticating
# HUBSPOKE_REAUTH_DELAY seconds (default 420) after noticing the change means the peer has noticed it
# too, so the new IKE SA authenticates on its first try and the tunnel is down only for that exchange.
#
# Reads the tunnel list from $HUBSPOKE_TUNNELS (default /etc/hubspoke-vpn/tunnels), one tunnel a line:
#   <tunnel> <aws-region> <parameter-name> <local-elastic-ip> <peer-elastic-ip>
# Other settings, for tests and the lab: HUBSPOKE_IPSEC_D (default /etc/ipsec.d), HUBSPOKE_CTLSOCKET
# (pluto's control socket, default pluto's own), HUBSPOKE_MAX_ATTEMPTS (0 = forever, the default),
# HUBSPOKE_BACKOFF_MAX (seconds, default 60), HUBSPOKE_STATE_DIR (default /var/lib/hubspoke-vpn),
# HUBSPOKE_REAUTH_DELAY (seconds, default 420).
set -u -o pipefail
umask 077

tunnels_file=${HUBSPOKE_TUNNELS:-/etc/hubspoke-vpn/tunnels}
ipsec_d=${HUBSPOKE_IPSEC_D:-/etc/ipsec.d}
max_attempts=${HUBSPOKE_MAX_ATTEMPTS:-0}
backoff_max=${HUBSPOKE_BACKOFF_MAX:-60}
state_dir=${HUBSPOKE_STATE_DIR:-/var/lib/hubspoke-vpn}
reauth_delay=${HUBSPOKE_REAUTH_DELAY:-420}
reload=no
[ "${1:-}" = "--reload" ] && reload=yes

log() { echo "hubspoke-psk: $*" >&2; }
whack() { ipsec whack ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} "$@"; }

# Prints the key of one parameter, or fails. A key must be what hubspoke-vpn generates: at least
# 32 characters of letters, digits and -_.+=~ (safe inside the quoted PSK of a secrets line).
fetch() {
  local region=$1 name=$2 value
  value=$(aws ssm get-parameter --region "$region" --name "$name" --with-decryption \
            --query Parameter.Value --output text 2>&1) || { log "get-parameter $name in $region failed: ${value//$'\n'/ }"; return 1; }
  if [ ${#value} -lt 32 ] || [[ ! $value =~ ^[A-Za-z0-9._+=~-]+$ ]]; then
    log "parameter $name in $region does not hold a usable key (${#value} characters); not writing it"
    return 1
  fi
  printf '%s' "$value"
}

changed=()
while read -r tunnel region name local_ip peer_ip; do
  [ -z "${tunnel:-}" ] || [ "${tunnel:0:1}" = "#" ] && continue
  attempt=1 delay=$((backoff_max < 2 ? backoff_max : 2))
  until key=$(fetch "$region" "$name"); do
    if [ "$max_attempts" -gt 0 ] && [ "$attempt" -ge "$max_attempts" ]; then
      log "$tunnel: giving up after $attempt attempts; its secrets file is unchanged"
      exit 1
    fi
    log "$tunnel: attempt $attempt failed; retrying in ${delay}s"
    sleep "$delay"
    attempt=$((attempt + 1)) delay=$((delay * 2 > backoff_max ? backoff_max : delay * 2))
  done
  file="$ipsec_d/$tunnel.secrets"
  line=$(printf '%s %s : PSK "%s"' "$local_ip" "$peer_ip" "$key")
  if [ -f "$file" ] && [ "$(cat "$file")" = "$line" ]; then
    continue
  fi
  # Write beside the target and rename, so pluto never reads a half-written file.
  printf '%s\n' "$line" >"$file.tmp" && chmod 600 "$file.tmp" && mv -f "$file.tmp" "$file" || { log "$tunnel: cannot write $file"; exit 1; }
  log "$tunnel: key written to $file"
  changed+=("$tunnel")
done <"$tunnels_file"

[ "$reload" = yes ] || exit 0

mkdir -p "$state_dir"
if [ ${#changed[@]} -gt 0 ]; then
  log "keys changed for ${changed[*]}: rereading secrets; re-authenticating in ${reauth_delay}s"
  whack --rereadsecrets
  for tunnel in "${changed[@]}"; do
    echo $(( $(date +%s) + reauth_delay )) >"$state_dir/$tunnel.reauth-after"
  done
fi
# Due re-authentications: a new IKE SA authenticates with the new key (rekeying the old one, or
# initiating a Child SA over it, would not).
for marker in "$state_dir"/*.reauth-after; do
  [ -f "$marker" ] || continue
  [ "$(cat "$marker")" -le "$(date +%s)" ] || continue
  tunnel=$(basename "$marker" .reauth-after)
  log "$tunnel: re-authenticating with the new key"
  whack --name "$tunnel" --terminate >/dev/null
  whack --name "$tunnel" --initiate --asynchronous >/dev/null
  rm -f "$marker"
done
exit 0
