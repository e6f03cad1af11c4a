#!/bin/bash
# hubspoke-health: reports each tunnel this gateway should terminate to CloudWatch as the metric
# TunnelUp: 1 when libreswan has both an established IKE SA and an established Child SA for it, else 0
# (also for a tunnel the agent left out because its desired state is missing or invalid).
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
tunnels_file=$HUBSPOKE_STATE_DIR/$HUBSPOKE_STATE_TUNNELS
dry_run=no
[ "${1:-}" = "--dry-run" ] && dry_run=yes

states=$(ipsec whack ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} --showstates 2>/dev/null) || states=""

metric_data=()
while read -r tunnel _rest; do
  [ -z "${tunnel:-}" ] || [ "${tunnel:0:1}" = "#" ] && continue
  value=0
  # `#3: "virginia-to-sydney":4500 STATE_V2_ESTABLISHED_IKE_SA (...)`, and the same for the Child SA.
  if grep -q "\"$tunnel\"[^ ]* STATE_V2_ESTABLISHED_IKE_SA" <<<"$states" \
     && grep -q "\"$tunnel\"[^ ]* STATE_V2_ESTABLISHED_CHILD_SA" <<<"$states"; then
    value=1
  fi
  dims="Stack=$HUBSPOKE_STACK,Region=$HUBSPOKE_SITE,Tunnel=$tunnel"
  if [ "$dry_run" = yes ]; then
    echo "$HUBSPOKE_METRIC_NAMESPACE $HUBSPOKE_METRIC_NAME $dims $value"
  fi
  metric_data+=("MetricName=$HUBSPOKE_METRIC_NAME,Dimensions=[{Name=Stack,Value=$HUBSPOKE_STACK},{Name=Region,Value=$HUBSPOKE_SITE},{Name=Tunnel,Value=$tunnel}],Value=$value,Unit=Count")
done < <(cat "$tunnels_file" 2>/dev/null)

[ "$dry_run" = yes ] && exit 0
[ ${#metric_data[@]} -gt 0 ] || exit 0
# shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
aws cloudwatch put-metric-data --region "$HUBSPOKE_AWS_REGION" ${HUBSPOKE_AWS_ARGS:-} --namespace "$HUBSPOKE_METRIC_NAMESPACE" --metric-data "${metric_data[@]}"
