#!/bin/bash
# hubspoke-health: reports each tunnel this gateway should terminate to CloudWatch as the metric
# TunnelUp: 1 when libreswan has both an established IKE SA and an established Child SA for it, else 0,
# and 0 for a tunnel the agent left out (its desired state is missing or invalid: it needs a person).
# With it, TunnelDataIn and TunnelDataOut: the bytes through the tunnel since the last report, from
# pluto's counters per Child SA (`whack --trafficstatus`). A Child SA is known by its serial and its
# add_time (a pluto restart numbers its SAs from 1 again, never with the same add_time); one first seen
# counts from 0, as a rekeyed SA starts at 0; one gone since the last report takes the bytes it carried
# after that report with it (under a minute of a retiring SA). Never negative, never counted twice.
# A tunnel the agent added that has never been up is not reported for its first
# $HUBSPOKE_NEW_TUNNEL_GRACE seconds (its peer may still be booting): no data, so its alarm does not
# page; still not up after that, it reports 0 and pages.
# Installed by hubspoke-vpn's user data as /usr/local/sbin/hubspoke-health; hubspoke-health.timer
# runs it every minute. Its IAM role may put metrics in its own namespace only.
#
#   hubspoke-health             send the values (aws cloudwatch put-metric-data)
#   hubspoke-health --dry-run   print what it would send, one line a tunnel, and send nothing
#
# Settings: the env file $HUBSPOKE_ENV (on the gateway /etc/hubspoke-vpn/gateway.env, rendered by the
# program from gateway/contract.ts); the tunnels: the list hubspoke-agent keeps in its state directory.
# HUBSPOKE_CTLSOCKET points at another pluto control socket (tests, the lab).
set -u -o pipefail

# shellcheck disable=SC1090
. "${HUBSPOKE_ENV:-/etc/hubspoke-vpn/gateway.env}" || { echo "hubspoke-health: cannot read its settings" >&2; exit 1; }
state=$HUBSPOKE_STATE_DIR
tunnels_file=$state/$HUBSPOKE_STATE_TUNNELS
left_out=$(cut -d' ' -f1 "$state/$HUBSPOKE_STATE_LEFT_OUT" 2>/dev/null)
now=$(date +%s)
dry_run=no
[ "${1:-}" = "--dry-run" ] && dry_run=yes

states=$(ipsec whack ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} --showstates 2>/dev/null) || states=""
traffic=$(ipsec whack ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} --trafficstatus 2>/dev/null) || traffic=""

# Bytes per tunnel since the last report: `006 #4: "virginia-to-sydney", type=ESP, add_time=1764860000,
# inBytes=168, outBytes=168, ...` per Child SA (libreswan 4 may add `[1] <peer>` after the name).
counters=$state/$HUBSPOKE_STATE_TRAFFIC
declare -A last=() bytes_in=() bytes_out=()
if [ -f "$counters" ]; then
  while read -r key _t tin tout; do last[$key]="$tin $tout"; done <"$counters"
fi
seen=""
while IFS= read -r line; do
  [[ $line =~ \#([0-9]+):\ \"([^\"]+)\".*add_time=([0-9]+),\ inBytes=([0-9]+),\ outBytes=([0-9]+) ]] || continue
  key=${BASH_REMATCH[1]}@${BASH_REMATCH[3]} t=${BASH_REMATCH[2]} in=${BASH_REMATCH[4]} out=${BASH_REMATCH[5]}
  read -r was_in was_out <<<"${last[$key]:-0 0}"
  # A counter below its last value is not the same SA's: counted from 0.
  [ "$in" -ge "$was_in" ] || was_in=0
  [ "$out" -ge "$was_out" ] || was_out=0
  bytes_in[$t]=$((${bytes_in[$t]:-0} + in - was_in))
  bytes_out[$t]=$((${bytes_out[$t]:-0} + out - was_out))
  seen+="$key $t $in $out"$'\n'
done <<<"$traffic"

metric_data=()
while read -r tunnel _rest; do
  [ -z "${tunnel:-}" ] || [ "${tunnel:0:1}" = "#" ] && continue
  value=0
  # `#3: "virginia-to-sydney":4500 STATE_V2_ESTABLISHED_IKE_SA (...)`, and the same for the Child SA.
  if grep -qx "$tunnel" <<<"$left_out"; then
    value=0
  elif grep -q "\"$tunnel\"[^ ]* STATE_V2_ESTABLISHED_IKE_SA" <<<"$states" \
     && grep -q "\"$tunnel\"[^ ]* STATE_V2_ESTABLISHED_CHILD_SA" <<<"$states"; then
    value=1
    touch "$state/$tunnel.$HUBSPOKE_STATE_UP_ONCE" 2>/dev/null
  elif [ ! -f "$state/$tunnel.$HUBSPOKE_STATE_UP_ONCE" ] && [ -f "$state/$tunnel.$HUBSPOKE_STATE_ADDED_AT" ] \
     && [ $((now - $(cat "$state/$tunnel.$HUBSPOKE_STATE_ADDED_AT"))) -lt "$HUBSPOKE_NEW_TUNNEL_GRACE" ]; then
    [ "$dry_run" = yes ] && echo "# $tunnel: added, never up yet: not reported during its grace period"
    continue
  fi
  dims="Stack=$HUBSPOKE_STACK,Region=$HUBSPOKE_REGION_NAME,Tunnel=$tunnel"
  dimensions="Dimensions=[{Name=Stack,Value=$HUBSPOKE_STACK},{Name=Region,Value=$HUBSPOKE_REGION_NAME},{Name=Tunnel,Value=$tunnel}]"
  if [ "$dry_run" = yes ]; then
    echo "$HUBSPOKE_METRIC_NAMESPACE $HUBSPOKE_METRIC_NAME $dims $value"
    echo "$HUBSPOKE_METRIC_NAMESPACE $HUBSPOKE_METRIC_DATA_IN $dims ${bytes_in[$tunnel]:-0}"
    echo "$HUBSPOKE_METRIC_NAMESPACE $HUBSPOKE_METRIC_DATA_OUT $dims ${bytes_out[$tunnel]:-0}"
  fi
  metric_data+=("MetricName=$HUBSPOKE_METRIC_NAME,$dimensions,Value=$value,Unit=Count"
    "MetricName=$HUBSPOKE_METRIC_DATA_IN,$dimensions,Value=${bytes_in[$tunnel]:-0},Unit=Bytes"
    "MetricName=$HUBSPOKE_METRIC_DATA_OUT,$dimensions,Value=${bytes_out[$tunnel]:-0},Unit=Bytes")
done < <(cat "$tunnels_file" 2>/dev/null)

# The counters move on only once a report has been sent: a dry run, or a report CloudWatch did not
# take, leaves them, and the next report carries those bytes.
[ "$dry_run" = yes ] && exit 0
if [ ${#metric_data[@]} -gt 0 ]; then
  # shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
  aws cloudwatch put-metric-data --region "$HUBSPOKE_AWS_REGION" ${HUBSPOKE_AWS_ARGS:-} --namespace "$HUBSPOKE_METRIC_NAMESPACE" --metric-data "${metric_data[@]}" \
    || exit 1
fi
printf '%s' "$seen" >"$counters.tmp" && mv -f "$counters.tmp" "$counters"
