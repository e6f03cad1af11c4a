#!/bin/bash
# hubspoke-bootstrap: makes an Amazon Linux 2023 instance a gateway, from the little its user data
# carries (this script, its unit and its settings). It installs the packages, then fetches the
# gateway's software (its scripts, units and settings files) from SSM Parameter Store, where the
# program published it under $HUBSPOKE_SOFTWARE_PATH as base64 parts of one gzip file, checks that
# file against $HUBSPOKE_SOFTWARE_SHA256 (named in the user data, so a changed part cannot pass),
# unpacks it, and enables and starts the gateway's units.
#
# hubspoke-bootstrap.service runs it at every boot until it has finished once for this digest: each
# step is retried until it succeeds (5 s, doubling, at most 2 min apart), and a reboot midway starts
# it over (every step is idempotent; files are replaced whole). While it has not finished after
# $HUBSPOKE_BOOTSTRAP_REPORT_AFTER s, it reports GatewayBootstrapPending 1 (its alarm pages); 0 when done.
#
# The tests run it with HUBSPOKE_ROOT (a directory standing for /) and stand-ins for dnf and systemctl.
# shellcheck disable=SC2317 # the steps below run through retry "$@", which shellcheck cannot follow
set -u -o pipefail
umask 022

# shellcheck disable=SC1090
. "${HUBSPOKE_BOOTSTRAP_ENV:-/etc/hubspoke-vpn/bootstrap.env}" || { echo "hubspoke-bootstrap: cannot read its settings" >&2; exit 1; }
root=${HUBSPOKE_ROOT:-}
done_marker=$root$HUBSPOKE_STATE_DIR/bootstrapped-$HUBSPOKE_SOFTWARE_SHA256
[ -f "$done_marker" ] && exit 0
mkdir -p "$root$HUBSPOKE_STATE_DIR"
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

log() { echo "hubspoke-bootstrap: $*" >&2; }
started=$SECONDS
# shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
awscli() { aws "$@" --region "$HUBSPOKE_AWS_REGION" --cli-connect-timeout 5 --cli-read-timeout 20 ${HUBSPOKE_AWS_ARGS:-}; }

pending() { # value
  local data
  data="[{\"MetricName\":\"$HUBSPOKE_METRIC_BOOTSTRAP_PENDING\",\"Dimensions\":[{\"Name\":\"Stack\",\"Value\":\"$HUBSPOKE_STACK\"},{\"Name\":\"Gateway\",\"Value\":\"$HUBSPOKE_GATEWAY_NAME\"}],\"Value\":$1,\"Unit\":\"Count\"}]"
  awscli cloudwatch put-metric-data --namespace "$HUBSPOKE_METRIC_NAMESPACE" --metric-data "$data" >/dev/null 2>&1 \
    || log "could not report $HUBSPOKE_METRIC_BOOTSTRAP_PENDING $1"
}

# Runs "$@" until it succeeds, 5 s apart at first, doubling up to 2 min (so that a pending gateway
# reports at least every few minutes: its alarm must not see a silent period as OK).
retry() {
  local delay=5
  until "$@"; do
    log "$1 failed; trying again in ${delay}s"
    [ $((SECONDS - started)) -ge "$HUBSPOKE_BOOTSTRAP_REPORT_AFTER" ] && pending 1
    sleep "$delay"
    delay=$((delay * 2 > 120 ? 120 : delay * 2))
  done
}

install_packages() {
  # libreswan is OpenSwan's maintained successor, packaged by Amazon Linux 2023; the AWS CLI (on
  # AL2023's images already) fetches the desired state and jq reads it; nftables clamps the MSS.
  dnf install -y libreswan awscli-2 jq nftables >"$work/dnf.log" 2>&1 || { log "dnf: $(tail -n 3 "$work/dnf.log" | tr '\n' ' ')"; return 1; }
}

fetch_software() {
  awscli ssm get-parameters-by-path --path "$HUBSPOKE_SOFTWARE_PATH" --output json >"$work/parts.json" 2>"$work/fetch.err" \
    || { log "get-parameters-by-path $HUBSPOKE_SOFTWARE_PATH: $(tr '\n' ' ' <"$work/fetch.err")"; return 1; }
  if [ "$(jq '.Parameters | length' "$work/parts.json")" = 0 ]; then
    log "no parameter under $HUBSPOKE_SOFTWARE_PATH (not published yet, or deleted)"
    return 1
  fi
  # The parts in the order of their names (SSM does not promise one).
  jq -j '.Parameters | sort_by(.Name) | .[].Value' "$work/parts.json" | base64 -d >"$work/software.gz" 2>/dev/null
  if ! echo "$HUBSPOKE_SOFTWARE_SHA256  $work/software.gz" | sha256sum -c --status; then
    log "the software under $HUBSPOKE_SOFTWARE_PATH is not the one this gateway's user data names (sha256 $HUBSPOKE_SOFTWARE_SHA256); not installing it"
    return 1
  fi
}

# Every file of the software (a JSON list of {path, permissions, content}), each written whole.
unpack_software() {
  local n i file
  gzip -dc "$work/software.gz" >"$work/software.json" || return 1
  n=$(jq length "$work/software.json") || return 1
  for ((i = 0; i < n; i++)); do
    file=$root$(jq -r ".[$i].path" "$work/software.json")
    mkdir -p "$(dirname "$file")"
    jq -j ".[$i].content" "$work/software.json" >"$file.tmp" && chmod "$(jq -r ".[$i].permissions" "$work/software.json")" "$file.tmp" \
      && mv -f "$file.tmp" "$file" || return 1
  done
  log "installed $n files of software $HUBSPOKE_SOFTWARE_SHA256"
}

start_units() {
  local units
  read -r -a units <"$root$HUBSPOKE_UNITS_FILE" || return 1
  # Apply /etc/sysctl.d now; at later boots systemd-sysctl applies it before networking. A key some
  # other file of the image sets that this kernel refuses must not stop the gateway: logged, not retried.
  sysctl --system >/dev/null 2>"$work/sysctl.err" || log "sysctl --system: $(tr '\n' ' ' <"$work/sysctl.err")"
  systemctl daemon-reload && systemctl enable "${units[@]}" && systemctl start --no-block "${units[@]}"
}

retry install_packages
retry fetch_software
retry unpack_software
retry start_units
: >"$done_marker"
[ $((SECONDS - started)) -ge "$HUBSPOKE_BOOTSTRAP_REPORT_AFTER" ] && pending 0
log "done after $((SECONDS - started))s"
exit 0
