#!/bin/bash
# hubspoke-health: reports each tunnel of this gateway to CloudWatch as the metric TunnelUp:
# 1 when libreswan has both an established IKE SA and an established Child SA for it, else 0.
# Installed by hubspoke-vpn's user data as /usr/local/sbin/hubspoke-health; hubspoke-health.timer
# runs it every minute. Its IAM role may put metrics in its own namespace only.
#
#   hubspoke-health             send the values (aws cloudwatch put-metric-data)
#   hubspoke-health --dry-run   print what it would send, one line a tunnel, and send nothing
#
# Settings come from $HUBSPOKE_HEALTH_CONF (default /etc/hubspoke-vpn/health.conf):
#   STACK=<pulumi stack>  REGION_NAME=<region name>  AWS_REGION=<aws region>  NAMESPACE=<metric namespace>
# and the tunnels from $HUBSPOKE_TUNNELS (default /etc/hubspoke-vpn/tunnels, first column).
# HUBSPOKE_CTLSOCKET points at another pluto control socket (tests, the lab).
set -u -o pipefail

# shellcheck disable=SC1090
. "${HUBSPOKE_HEALTH_CONF:-/etc/hubspoke-vpn/health.conf}"
tunnels_file=${HUBSPOKE_TUNNELS:-/etc/hubspoke-vpn/tunnels}
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
  dims="Stack=$STACK,Region=$REGION_NAME,Tunnel=$tunnel"
  if [ "$dry_run" = yes ]; then
    echo "$NAMESPACE TunnelUp $dims $value"
  fi
  metric_data+=("MetricName=TunnelUp,Dimensions=[{Name=Stack,Value=$STACK},{Name=Region,Value=$REGION_NAME},{Name=Tunnel,Value=$tunnel}],Value=$value,Unit=Count")
done <"$tunnels_file"

[ "$dry_run" = yes ] && exit 0
[ ${#metric_data[@]} -gt 0 ] || exit 0
aws cloudwatch put-metric-data --region "$AWS_REGION" --namespace "$NAMESPACE" --metric-data "${metric_data[@]}"
