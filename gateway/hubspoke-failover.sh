#!/bin/bash
# hubspoke-failover: runs on both gateways of a site with a standby (hubspoke-failover.service) and
# keeps exactly one of them active. The active gateway owns the site: the site's Elastic IP (the
# address the peers know) is associated with its site address (a secondary private IP of its network
# interface), every route to the peers' ranges in every route table of the VPC targets its network
# interface, and its pluto has initiated the tunnels. pluto runs on both, warm: the conns of a pair
# load without starting (auto=add), so the standby's pluto holds the same tunnel ends and keys (written
# by its own hubspoke-agent from its own parameters) and only waits; hubspoke-health reports only
# while $HUBSPOKE_RUN_DIR/active exists.
#
# The standby probes, every $HUBSPOKE_PROBE_INTERVAL s and in parallel, the active's private IP across
# the VPC and each peer gateway through the tunnels (its packets follow the VPC's routes to the
# active). After $HUBSPOKE_CONFIRM_PROBES echoes in a row that nothing answered, it takes over: the
# Elastic IP, the routes and the tunnels at once (see activate; the peers take the new SAs, same
# identities, same address, and their dead-peer detection restarts their side once more about 10 s
# after the failure: libreswan keeps the dead gateway's SA until then). It never gives the
# site back by itself: the active steps down only when it sees that the Elastic IP is no longer its
# own (checked every $HUBSPOKE_OWNER_CHECK s). So at any moment at most one gateway owns the Elastic
# IP (AWS moves it atomically), and a gateway that returns after a failure becomes the standby.
#
# A planned handover: an active that is drained (its agent mirrors the drain parameter into
# $HUBSPOKE_STATE_DIR/$HUBSPOKE_STATE_DRAINED) or shutting down (`hubspoke-failover handover`, the
# ExecStop of hubspoke-handover.service) answers the standby's probes with IP TTL
# $HUBSPOKE_HANDOVER_TTL. A ready standby takes over at once (no missed echoes to wait for); the active
# keeps forwarding until the Elastic IP has moved, then steps down. If the standby does not take it
# within $HUBSPOKE_HANDOVER_WAIT s, the active keeps the site and says so. A drained gateway never
# takes the site (it reports StandbyReady 0 while drained).
#
# The site's layout (allocation id, both gateways' interfaces and addresses, the route tables, the
# peer ranges, the probe targets) is published by the program in $HUBSPOKE_FAILOVER_PARAMETER; the
# last good copy is kept in $HUBSPOKE_STATE_DIR so that an SSM outage does not stop a failover.
#
# Both gateways run the same tunnel ends with the same keys; their conns differ only in left=, each
# gateway's own site address, so each has its own desired-state path ($HUBSPOKE_PARAMETER_PATH).
#
# Settings: the env file $HUBSPOKE_ENV (rendered by the program from gateway/contract.ts). The lab
# also sets HUBSPOKE_AWS_ARGS (--endpoint-url of its local AWS) and its own HUBSPOKE_IPSEC_START/STOP.
set -u -o pipefail
umask 022

# shellcheck disable=SC1090
. "${HUBSPOKE_ENV:-/etc/hubspoke-vpn/gateway.env}" || { echo "hubspoke-failover: cannot read its settings" >&2; exit 1; }
state=$HUBSPOKE_STATE_DIR run=$HUBSPOKE_RUN_DIR
mkdir -p "$state" "$run"

# `hubspoke-failover handover`: ask the running script to hand the site over now (at shutdown), and
# wait for its answer. Exit status 0 when the site is on the partner (or was not on this gateway).
if [ "${1:-}" = handover ]; then
  # Nobody holds the lock: no hubspoke-failover runs here, so this gateway holds no site.
  if { exec 8>"$run/failover.lock"; } 2>/dev/null && flock -n 8; then
    echo "hubspoke-failover handover: not running: nothing to hand over"
    exit 0
  fi
  rm -f "$run/handover-result"
  : >"$run/handover-request"
  [ -p "$run/tick" ] && { exec 6<>"$run/tick" && echo >&6; exec 6>&-; }
  for ((i = 0; i < (HUBSPOKE_HANDOVER_WAIT + 10) * 5; i++)); do
    if [ -s "$run/handover-result" ]; then
      read -r result <"$run/handover-result"
      echo "hubspoke-failover handover: $result"
      [[ $result != refused* ]]
      exit
    fi
    sleep 0.2
  done
  echo "hubspoke-failover handover: the running hubspoke-failover did not answer within $((HUBSPOKE_HANDOVER_WAIT + 10))s" >&2
  exit 1
elif [ -n "${1:-}" ]; then
  echo "usage: hubspoke-failover [handover]" >&2
  exit 2
fi

exec 8>"$run/failover.lock"
flock -n 8 || { echo "hubspoke-failover: already running ($run/failover.lock)" >&2; exit 1; }

log() { printf '%(%H:%M:%S)T hubspoke-failover: %s\n' -1 "$*" >&2; }
# Short bounds: a takeover must not wait on a hung endpoint.
export AWS_RETRY_MODE=${AWS_RETRY_MODE:-standard} AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-2}
# whack itself, not the `ipsec` wrapper script: one process less per call on a takeover's critical path.
whack_bin=$(ipsec --directory 2>/dev/null)/whack
[ -x "$whack_bin" ] || whack_bin="ipsec whack"
whack() { $whack_bin ${HUBSPOKE_CTLSOCKET:+--ctlsocket "$HUBSPOKE_CTLSOCKET"} "$@"; }
# shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
awscli() { aws "$@" --region "$HUBSPOKE_AWS_REGION" --cli-connect-timeout 3 --cli-read-timeout 10 ${HUBSPOKE_AWS_ARGS:-}; }
# The loop runs every second for years: it forks nothing while nothing happens (bash's own clock,
# and a read with a timeout on a FIFO instead of sleep; a prober writes to it to wake the loop early).
tick() { printf -v t '%(%s)T' -1; }
[ -p "$run/tick" ] || { rm -f "$run/tick"; mkfifo -m 600 "$run/tick"; }
exec 7<>"$run/tick"
pause() { read -r -t "$1" -u 7 _ || true; }
# The handover's signal: this host's default IP TTL (builtins only; the tests point it at a file).
ttl_file=${HUBSPOKE_TTL_SYSCTL:-/proc/sys/net/ipv4/ip_default_ttl}
normal_ttl=64
read -r ttl 2>/dev/null <"$ttl_file" && [ "$ttl" != "$HUBSPOKE_HANDOVER_TTL" ] && normal_ttl=$ttl
signal_handover() { echo "$1" 2>/dev/null >"$ttl_file"; }
drained() { [ -e "$state/$HUBSPOKE_STATE_DRAINED" ]; }

# 1. The layout. Without one (first boot, before the program published it) nothing can be decided.
load_layout() {
  local raw
  if raw=$(awscli ssm get-parameter --name "$HUBSPOKE_FAILOVER_PARAMETER" --output json 2>"$run/layout.err") \
     && jq -r '.Parameter.Value' <<<"$raw" >"$state/failover.json.tmp" 2>/dev/null \
     && jq -e --arg g "$HUBSPOKE_GATEWAY" '.gateways[] | select(.name == $g)' "$state/failover.json.tmp" >/dev/null 2>&1; then
    mv -f "$state/failover.json.tmp" "$state/failover.json"
  else
    rm -f "$state/failover.json.tmp"
    [ -f "$state/failover.json" ] || return 1
    log "cannot read $HUBSPOKE_FAILOVER_PARAMETER ($(tr '\n' ' ' <"$run/layout.err")); using the last good layout"
  fi
  local l=$state/failover.json
  allocation=$(jq -r '.allocationId' "$l")
  read -r my_eni my_ip my_site <<<"$(jq -r --arg g "$HUBSPOKE_GATEWAY" '.gateways[] | select(.name == $g) | "\(.networkInterfaceId) \(.privateIp) \(.siteIp)"' "$l")"
  me=$my_eni/$my_site
  read -r other_name other_ip other_eni <<<"$(jq -r --arg g "$HUBSPOKE_GATEWAY" '.gateways[] | select(.name != $g) | "\(.name) \(.privateIp) \(.networkInterfaceId)"' "$l")"
  preferred=$(jq -r --arg g "$HUBSPOKE_GATEWAY" '.gateways[0].name == $g' "$l")
  route_tables=$(jq -r '.routeTables | join(" ")' "$l")
  peer_cidrs=$(jq -r '.peerCidrs | join(" ")' "$l")
  probe_targets=$(jq -r '.probeTargets | join(" ")' "$l")
}

# Where the site's Elastic IP is: "<network interface>/<private IP>" (this gateway's own is $me),
# "none", or "" when EC2 did not answer. The private IP counts: while a standby is being added to a
# running site, the address still sits on the primary IP of the first gateway's interface, where the
# tunnels (left= the site address) do not work.
owner() {
  local raw
  raw=$(awscli ec2 describe-addresses --allocation-ids "$allocation" --output json 2>"$run/owner.err") \
    || { log "describe-addresses failed: $(tr '\n' ' ' <"$run/owner.err")"; echo ""; return; }
  jq -r '.Addresses[0] | if .NetworkInterfaceId then "\(.NetworkInterfaceId)/\(.PrivateIpAddress)" else "none" end' <<<"$raw"
}

# 2. This host's side: the site address on the interface (AWS assigns it to the network interface;
# the instance must carry it too). The conns name it (left=), so pluto sends IKE and ESP from it,
# which AWS translates to the site's Elastic IP while it is associated here. Everything else (AWS's
# APIs) leaves from the private IP, whose own Elastic IP works whether this gateway is active or not.
add_site_address() {
  local dev prefix
  dev=$(ip -4 -o addr show | awk -v ip="$my_ip" '{ split($4, a, "/"); if (a[1] == ip) print $2 }')
  prefix=$(ip -4 -o addr show | awk -v ip="$my_ip" '{ split($4, a, "/"); if (a[1] == ip) print a[2] }')
  [ -n "$dev" ] || { log "no interface holds $my_ip"; return 1; }
  ip -4 -o addr show dev "$dev" | grep -q " $my_site/" || ip addr add "$my_site/$prefix" dev "$dev"
}

metric() { # name value
  local data
  data=$(jq -cn --arg n "$1" --argjson v "$2" --arg s "$HUBSPOKE_STACK" --arg r "$HUBSPOKE_REGION_NAME" \
    '[{MetricName: $n, Dimensions: [{Name: "Stack", Value: $s}, {Name: "Region", Value: $r}], Value: $v, Unit: "Count"}]')
  awscli cloudwatch put-metric-data --namespace "$HUBSPOKE_METRIC_NAMESPACE" --metric-data "$data" >/dev/null 2>"$run/metric.err" \
    || log "put-metric-data $1 failed: $(tr '\n' ' ' <"$run/metric.err")"
}

# Every route to a peer range, in every table, to this interface (or to $1's). Returns non-zero if one failed.
claim_routes() {
  local rt cidr pids=() failed=0 eni=${1:-$my_eni}
  for rt in $route_tables; do
    for cidr in $peer_cidrs; do
      awscli ec2 replace-route --route-table-id "$rt" --destination-cidr-block "$cidr" --network-interface-id "$eni" \
        >/dev/null 2>"$run/route-$rt-${cidr%/*}.err" &
      pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] || log "a route could not be moved: $(cat "$run"/route-*.err | tr '\n' ' '); checking again in 5s"
  return "$failed"
}

# Routes that do not target this interface (after a partial failure, or a hand edit): moved back.
check_routes() {
  local raw wrong
  # shellcheck disable=SC2086 # a list of ids
  raw=$(awscli ec2 describe-route-tables --route-table-ids $route_tables --output json 2>/dev/null) || return
  wrong=$(jq -r --arg eni "$my_eni" --arg cidrs "$peer_cidrs" \
    '.RouteTables[] | .RouteTableId as $t | .Routes[] | select((.DestinationCidrBlock as $d | $cidrs | split(" ") | index($d)) and .NetworkInterfaceId != $eni) | "\($t) \(.DestinationCidrBlock)"' <<<"$raw")
  [ -n "$wrong" ] || return 0
  log "routes not on this gateway: ${wrong//$'\n'/, }; moving them"
  while read -r rt cidr; do
    awscli ec2 replace-route --route-table-id "$rt" --destination-cidr-block "$cidr" --network-interface-id "$my_eni" >/dev/null 2>&1
  done <<<"$wrong"
}

# 3. Becoming active. A ready standby (its last round's dry runs passed: EC2 and IAM would let it
# move the Elastic IP and every route) sends the association and the routes at once and initiates
# the tunnels while EC2 works: EC2 answers only once the address has moved, and waiting for that
# answer before the routes and IKE would add the API's whole round trip to every handover and
# failover. If the association is refused after all, the routes go back to the partner and the
# tunnels just initiated are ended, so a site that was whole on the partner stays whole.
# Any other takeover (no dry run passed: IAM may refuse; at start) moves the Elastic IP first, on its
# own, and touches the routes only once it has moved.
# The rest (metric, probes) waits until the routes have moved. $1: why; $2: count it as a failover.
# Returns non-zero when the Elastic IP did not move: the next attempt waits a growing backoff (2 s,
# doubling, at most 60 s).
activate() {
  local ready=no associating routes=""
  [ -e "$run/ready" ] && ready=yes
  log "taking over the site: $1"
  awscli ec2 associate-address --allocation-id "$allocation" --network-interface-id "$my_eni" \
    --private-ip-address "$my_site" --allow-reassociation --output json >/dev/null 2>"$run/associate.err" &
  associating=$!
  if [ "$ready" = yes ]; then
    claim_routes &
    routes=$!
    initiate_tunnels
  fi
  if ! wait "$associating"; then
    tick
    retry_at=$((t + backoff))
    if [ "$ready" = yes ]; then
      wait "$routes"
      drop_standby_states "the Elastic IP did not move"
      claim_routes "$other_eni" || true
      log "associate-address failed: $(tr '\n' ' ' <"$run/associate.err"); routes given back to $other_name, tunnels ended, next attempt in ${backoff}s"
    else
      log "associate-address failed: $(tr '\n' ' ' <"$run/associate.err"); nothing else moved, next attempt in ${backoff}s"
    fi
    backoff=$((backoff * 2 > 60 ? 60 : backoff * 2))
    return 1
  fi
  backoff=2
  log "the site's Elastic IP is on this gateway ($my_eni, $my_site)"
  rm -f "$run/ready" "$run/handover-asked"
  : >"$run/active"
  : >"$run/owner"
  if [ "$ready" = no ]; then
    claim_routes &
    routes=$!
    initiate_tunnels
  fi
  # What is not on the traffic's path waits until the routes have moved.
  local moved=yes
  wait "$routes" || moved=no
  route_tunnels
  stop_probes
  [ "$2" = yes ] && metric "$HUBSPOKE_METRIC_FAILOVERS" 1 &
  tick
  role=active next_owner_check=$((t + HUBSPOKE_OWNER_CHECK)) next_route_check=$((t + HUBSPOKE_ROUTE_CHECK))
  if [ "$moved" = yes ]; then
    log "every route to $peer_cidrs targets $my_eni"
  else
    next_route_check=$((t + 5)) # a route that did not move costs the return path: check again soon
  fi
}

# pluto running (started if it is not), its conns oriented, then every tunnel initiated that the peer
# has not brought up already. Sets $tunnels.
initiate_tunnels() {
  local name states tries
  tunnels=()
  if ! states=$(whack --showstates 2>/dev/null); then
    log "pluto is not running: starting it"
    $HUBSPOKE_IPSEC_START || log "starting ipsec failed"
    for ((tries = 0; tries < 50; tries++)); do states=$(whack --showstates 2>/dev/null) && break; pause 0.2; done
  fi
  orient
  # The tunnels the agent wrote (a tunnel it left out has no conn file).
  while read -r name; do
    [ -f "$HUBSPOKE_IPSEC_D/$name.conf" ] || continue
    tunnels+=("$name")
    # The peer was faster (its dead-peer detection restarts the tunnel towards the site's address too):
    # a second IKE SA would only cross with it.
    [[ $states =~ \"$name\"[^\ ]*\ STATE_V2_ESTABLISHED_IKE_SA ]] && continue
    whack --name "$name" --initiate --asynchronous >/dev/null 2>&1 || log "$name: pluto refused to initiate it"
  done <"$state/$HUBSPOKE_STATE_TUNNELS"
  read -r pluto_pid 2>/dev/null <"$HUBSPOKE_PLUTO_PID" || pluto_pid=""
  log "tunnels initiated: ${tunnels[*]} (pluto ${pluto_pid:-?})"
}

# The initiated tunnels routed, as auto=start would: the kernel's policy stays in place whatever SA
# comes and goes (a duplicate deleted after crossed initiations does not take the policy with it).
route_tunnels() {
  local name
  for name in "${tunnels[@]}"; do whack --name "$name" --route >/dev/null 2>&1; done
}

# The agent initiates a tunnel it adds or re-keys, also on the standby: an IKE SA from an address that
# is not the site's, which nobody answers and which would cross with a takeover's. The standby ends it.
# Also a refused takeover's. $1: why (default: the standby's).
drop_standby_states() {
  local states name
  local -A names=()
  states=$(whack --showstates 2>/dev/null) || return 0
  while [[ $states =~ \"([^\"]+)\" ]]; do
    names[${BASH_REMATCH[1]}]=1
    states=${states#*\""${BASH_REMATCH[1]}"\"}
  done
  for name in "${!names[@]}"; do
    whack --name "$name" --terminate >/dev/null 2>&1
    log "ended $name's negotiation: ${1:-this is the standby, and only the active initiates}"
  done
}

# pluto orients a conn (finds its left=, the site address, among the host's addresses) when it loads
# it or rescans: at boot ipsec.service may start before this script added the address. Once per pluto.
orient() {
  local pid
  read -r pid 2>/dev/null <"$HUBSPOKE_PLUTO_PID" || pid=""
  [ -n "$pid" ] && [ "$pid" = "$listened" ] && return
  whack --listen >/dev/null 2>&1 && listened=$pid
}

# Stepping down: the Elastic IP is elsewhere, so this gateway's tunnels cannot work any more. pluto
# restarts warm: its SAs gone, its conns loaded, none initiated.
deactivate() {
  log "stepping down: $1"
  rm -f "$run/active" "$run/unready" "$run/ready"
  $HUBSPOKE_IPSEC_STOP || log "stopping ipsec failed"
  $HUBSPOKE_IPSEC_START || log "starting ipsec failed"
  # No flapping: a gateway that stepped down while alive takes the site back only from an active it
  # has seen answer since, or after the hold-down (a partition between the two, seen from both sides,
  # moves the site at most once per hold-down).
  tick
  : >"$run/owner"
  role=standby unowned_since="" seen_alive=no not_before=$((t + HUBSPOKE_STEP_DOWN_HOLD)) waiting_logged=no refusal_logged=no
  start_probes
}

# A planned handover ($1: why): signal the standby, and keep forwarding until EC2 has the Elastic IP
# elsewhere and no route of the site targets this gateway any more (the new active moves them right
# after the address). Returns 0 then ($handed_to: where the address is), for the caller to step down;
# non-zero, keeping the site, if the standby did not take it.
handover() {
  local current="" deadline moved=no
  log "handing the site to $other_name: $1"
  signal_handover "$HUBSPOKE_HANDOVER_TTL" || { log "cannot signal $other_name (writing $ttl_file failed): keeping the site"; return 1; }
  tick
  deadline=$((t + HUBSPOKE_HANDOVER_WAIT))
  while [ "$t" -lt "$deadline" ]; do
    pause 0.5
    if [ "$moved" = no ]; then
      current=$(owner)
      if [ -n "$current" ] && [ "$current" != none ] && [ "${current%/*}" != "$my_eni" ]; then
        moved=yes
        signal_handover "$normal_ttl"
      fi
    fi
    if [ "$moved" = yes ] && routes_elsewhere; then
      handed_to=$current
      return 0
    fi
    tick
  done
  signal_handover "$normal_ttl"
  if [ "$moved" = yes ]; then
    log "the Elastic IP is on $current, but a route still targets this gateway after ${HUBSPOKE_HANDOVER_WAIT}s (the new active repairs it)"
    handed_to=$current
    return 0
  fi
  log "$other_name did not take the site within ${HUBSPOKE_HANDOVER_WAIT}s (its log says why; it reports StandbyReady 0 when it cannot): keeping it"
  return 1
}

# No route to a peer range, in any table, targets this interface (false when EC2 did not answer).
routes_elsewhere() {
  local raw
  # shellcheck disable=SC2086 # a list of ids
  raw=$(awscli ec2 describe-route-tables --route-table-ids $route_tables --output json 2>/dev/null) || return 1
  jq -e --arg eni "$my_eni" --arg cidrs "$peer_cidrs" \
    '[.RouteTables[].Routes[] | select((.DestinationCidrBlock as $d | $cidrs | split(" ") | index($d)) and .NetworkInterfaceId == $eni)] | length == 0' \
    <<<"$raw" >/dev/null
}

# Whether this standby could take the site over now, reported as StandbyReady (1 or 0; the reason
# logged when it changes): its tunnel files are there (its agent ran), EC2 answers it, and EC2 would
# let it move the Elastic IP and every route table's routes. The last two are asked with --dry-run:
# EC2 answers DryRunOperation when the call would succeed, UnauthorizedOperation when IAM denies it.
standby_check() {
  local why="" out rt before="" key
  drained && why="drained ($HUBSPOKE_DRAIN_PARAMETER)"
  [ -n "$why" ] || [ -s "$state/$HUBSPOKE_STATE_TUNNELS" ] || why="no tunnel files (its agent has not run)"
  [ -n "$why" ] || [ "$misses" -lt "$HUBSPOKE_CONFIRM_PROBES" ] || why="the active answers none of its probes ($misses missed in a row)"
  [ -n "$why" ] || [ -n "${current:-}" ] || why="EC2 has not answered describe-addresses"
  if [ -z "$why" ]; then
    out=$(awscli ec2 associate-address --allocation-id "$allocation" --network-interface-id "$my_eni" \
      --private-ip-address "$my_site" --allow-reassociation --dry-run 2>&1)
    [[ $out == *"(DryRunOperation)"* ]] || why="associate-address --dry-run: ${out//$'\n'/ }"
  fi
  for rt in $route_tables; do
    [ -z "$why" ] || break
    out=$(awscli ec2 replace-route --route-table-id "$rt" --destination-cidr-block "${peer_cidrs%% *}" \
      --network-interface-id "$my_eni" --dry-run 2>&1)
    [[ $out == *"(DryRunOperation)"* ]] || why="replace-route --dry-run in $rt: ${out//$'\n'/ }"
  done
  read -r before 2>/dev/null <"$run/unready"
  if [ -n "$why" ]; then
    # Logged when the step or the error code changes: EC2's message differs on every call (its encoded part).
    key=${why%%:*}
    [[ $why =~ \(([A-Za-z.]+)\) ]] && key+=" ${BASH_REMATCH[1]}"
    [ "$key" = "$before" ] || log "standby: could not take over: $why"
    printf '%s\n' "$key" >"$run/unready"
    rm -f "$run/ready"
    metric "$HUBSPOKE_METRIC_STANDBY_READY" 0
  else
    [ -z "$before" ] || log "standby: ready to take over again"
    rm -f "$run/unready"
    [ -e "$run/active" ] || : >"$run/ready"
    metric "$HUBSPOKE_METRIC_STANDBY_READY" 1
  fi
}

# 4. The standby's view of the active: anything answering, directly or through a tunnel. One ping per
# target runs while this gateway is the standby, one echo a second; each keeps in $run/misses-<n> how
# many echoes in a row went unanswered (ping -O reports each one as it sends the next). Counting
# echoes rather than seconds means a gateway too busy to ping, or to read the answers, never takes a
# late answer for a dead active (bash builtins only: nothing forks while nothing happens).
probers=()
prober() {
  local file=$run/misses-$2 misses=0 line
  echo - >"$file" # nothing known yet: neither an answer nor a miss
  while true; do
    ping -n -O -i "$HUBSPOKE_PROBE_INTERVAL" -W "$HUBSPOKE_PROBE_TIMEOUT" "$1" 2>/dev/null | while read -r line; do
      case $line in
        *" bytes from "*)
          misses=0
          # The active asks this gateway to take the site (only the partner's own answers count). A
          # router between the two subnets may have taken a few off the TTL it sent.
          [ "$2" = 0 ] && [[ $line =~ \ ttl=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -le "$HUBSPOKE_HANDOVER_TTL" ] \
            && [ "${BASH_REMATCH[1]}" -gt $((HUBSPOKE_HANDOVER_TTL - 8)) ] && { : >"$run/handover-asked"; echo >"$run/tick"; }
          ;;
        "no answer yet"*) misses=$((misses + 1)) ;;
        *) continue ;;
      esac
      echo "$misses" >"$file"
      # The main loop sleeps on the FIFO: wake it the moment this target crosses the threshold.
      [ "$misses" = "$HUBSPOKE_CONFIRM_PROBES" ] && echo >"$run/tick"
    done
    # ping gave up (no route, say): this target tells nothing until it runs again, so it counts as unanswered.
    echo 999 >"$file"
    sleep "$HUBSPOKE_PROBE_INTERVAL"
  done
}
start_probes() {
  local target n=0
  stop_probes
  rm -f "$run"/misses-*
  for target in "$other_ip" $probe_targets; do
    # Without the lock's descriptor: a prober that outlived this script must not keep its successor out.
    prober "$target" "$n" 8>&- &
    probers+=($!)
    n=$((n + 1))
  done
  declare -gA seen_misses=()
}
# The fewest unanswered echoes in a row over the targets heard from so far: 0 when the last echo to
# any of them was answered. Nothing heard from any target yet counts as no miss (and no answer).
fewest_misses() {
  local f value fewest=""
  for f in "$run"/misses-*; do
    [ -f "$f" ] || continue
    # A prober may be rewriting its file at this moment: an empty read keeps its last value.
    read -r value <"$f" && [[ $value =~ ^[0-9]+$ ]] && seen_misses[$f]=$value
    value=${seen_misses[$f]:-}
    [ -n "$value" ] && { [ -z "$fewest" ] || [ "$value" -lt "$fewest" ]; } && fewest=$value
  done
  misses=${fewest:--}
}
stop_probes() {
  local p
  for p in "${probers[@]}"; do
    pkill -P "$p" 2>/dev/null
    kill "$p" 2>/dev/null
  done
  probers=()
}

until load_layout; do
  log "no failover layout in $HUBSPOKE_FAILOVER_PARAMETER yet; retrying"
  pause 5
done
log "gateway $HUBSPOKE_GATEWAY ($my_eni, $my_ip, site address $my_site); partner $other_name ($other_ip)"
until add_site_address; do pause 5; done
listened="" pluto_pid=""
orient
rm -f "$run/active"
# A handover cut short (a crash, a kill) must not leave the signal on.
signal_handover "$normal_ttl"
trap 'stop_probes; signal_handover "$normal_ttl"' EXIT
tick
retry_at=0 backoff=2
# A standby that has never seen the active answer (its own start, or an active already dead) waits
# $HUBSPOKE_FIRST_SIGHT_GRACE s first: a slow start of its own probes must not look like a dead active.
role=standby unowned_since="" seen_alive=no not_before=$((t + HUBSPOKE_FIRST_SIGHT_GRACE)) next_metric=0 next_layout=$((t + 300)) silent_logged=no waiting_logged=no
next_handover=0 refusal_logged=no drained_logged=no was_drained=no
rm -f "$run/handover-asked" "$run/handover-request" "$run/ready"
# At start: resume ownership if the Elastic IP is already here (a restart) or on this interface's
# other address (a standby was just added to this site), else start as standby.
until current=$(owner) && [ -n "$current" ]; do pause "$HUBSPOKE_PROBE_INTERVAL"; done
if [ "$current" = "$me" ]; then
  activate "the site's Elastic IP is already on this gateway" no || start_probes
elif [ "${current%/*}" = "$my_eni" ]; then
  activate "the site's Elastic IP is on this gateway's ${current#*/}, not its site address $my_site" no || start_probes
elif [ "$current" = none ] && [ "$preferred" = true ] && ! drained; then
  activate "the site's Elastic IP is on no gateway, and this is the site's first gateway" no || start_probes
else
  log "standby: the site is on ${current}"
  start_probes
fi
tick
next_owner_check=$((t + HUBSPOKE_OWNER_CHECK))

while true; do
  tick
  if [ "$t" -ge "$next_layout" ]; then
    load_layout
    next_layout=$((t + 300))
  fi
  # Shutdown (hubspoke-handover.service's ExecStop): hand over now, and answer `hubspoke-failover handover`.
  if [ -e "$run/handover-request" ]; then
    rm -f "$run/handover-request"
    handed=no
    if [ "$role" != active ]; then
      result="not active: nothing to hand over"
    elif handover "this gateway is shutting down"; then
      result="handed the site to $other_name" handed=yes
    else
      result="refused: $other_name did not take the site within ${HUBSPOKE_HANDOVER_WAIT}s; this gateway keeps it while it runs"
    fi
    # Answered before the step-down's pluto restart: the shutdown need not wait for it.
    echo "$result" >"$run/handover-result.tmp" && mv -f "$run/handover-result.tmp" "$run/handover-result"
    [ "$handed" = yes ] && deactivate "handed the site to $other_name (the Elastic IP is on $handed_to)"
    continue
  fi
  if [ "$role" = active ] && drained && [ "$t" -ge "$next_handover" ]; then
    if handover "this gateway is drained ($HUBSPOKE_DRAIN_PARAMETER)"; then
      deactivate "handed the site to $other_name (the Elastic IP is on $handed_to)"
    else
      next_handover=$((t + HUBSPOKE_HANDOVER_RETRY))
    fi
    continue
  fi
  if [ "$role" = active ]; then
    # pluto restarted (systemd brings it back after a crash): its conns loaded without starting.
    read -r pid 2>/dev/null <"$HUBSPOKE_PLUTO_PID" || pid=""
    if [ "$pid" != "$pluto_pid" ]; then
      log "pluto changed (${pluto_pid:-none} -> ${pid:-none}): initiating the tunnels again"
      initiate_tunnels
      route_tunnels
    fi
    # Routes are repaired only by a gateway that has just confirmed it still owns the site: one that lost
    # it unnoticed would otherwise pull them back from the new active.
    [ "$t" -ge "$next_route_check" ] && next_owner_check=$t
    if [ "$t" -ge "$next_owner_check" ]; then
      next_owner_check=$((t + HUBSPOKE_OWNER_CHECK))
      current=$(owner)
      if [ "$current" = none ]; then
        # Disassociated by hand or by a change: nobody else holds it, so this gateway claims it back.
        activate "the site's Elastic IP is on no gateway" no
      elif [ -n "$current" ] && [ "$current" != "$me" ] && [ "${current%/*}" = "$my_eni" ]; then
        activate "the site's Elastic IP is on this gateway's ${current#*/}, not its site address $my_site" no
      elif [ -n "$current" ] && [ "$current" != "$me" ]; then
        deactivate "the site's Elastic IP is now on $current"
      elif [ -z "$current" ]; then
        next_route_check=$((next_route_check > t ? next_route_check : t + HUBSPOKE_OWNER_CHECK)) # EC2 did not answer: no repair blind
      fi
    fi
    if [ "$role" = active ] && [ "$t" -ge "$next_route_check" ]; then
      next_route_check=$((t + HUBSPOKE_ROUTE_CHECK))
      check_routes
    fi
    pause "$HUBSPOKE_PROBE_INTERVAL"
    continue
  fi
  fewest_misses
  if [ "$misses" = - ]; then
    misses=0 # no echo answered or missed yet
  elif [ "$misses" = 0 ]; then
    [ "$silent_logged" = yes ] && log "the active answers again"
    seen_alive=yes silent_logged=no
  elif [ "$silent_logged" = no ]; then
    log "the active did not answer $misses echo(es) (across the VPC: $other_ip; through the tunnels: $probe_targets)"
    silent_logged=yes
  fi
  # The active hands the site over: taken at once if this gateway is ready (its last check passed).
  if [ -e "$run/handover-asked" ]; then
    rm -f "$run/handover-asked"
    if ! drained && [ -e "$run/ready" ]; then
      activate "$other_name hands the site over" no
      continue
    fi
    [ "$refusal_logged" = yes ] || log "$other_name asks to hand the site over; refused: $(drained && echo "drained" || cat "$run/unready" 2>/dev/null || echo "not checked yet")"
    refusal_logged=yes
  fi
  if drained; then
    # Drained: never takes the site, whatever the active does (the Elastic IP found here still counts, below).
    if [ "$misses" -ge "$HUBSPOKE_CONFIRM_PROBES" ] && [ "$drained_logged" = no ]; then
      log "the active does not answer, but this gateway is drained: not taking over"
      drained_logged=yes
    fi
  elif [ "$misses" -ge "$HUBSPOKE_CONFIRM_PROBES" ] && [ "$seen_alive" = no ] && [ "$t" -lt "$not_before" ]; then
    [ "$waiting_logged" = yes ] || log "not taking over for $((not_before - t))s more: the active has not answered once since this gateway became the standby"
    waiting_logged=yes
  elif [ "$misses" -ge "$HUBSPOKE_CONFIRM_PROBES" ] && [ "$t" -ge "$retry_at" ]; then
    activate "the active answered none of $misses echoes in a row, across the VPC or through a tunnel" yes
    continue
  fi
  # The standby asks EC2 in the background: a slow call must not stall the probes' verdict.
  if [ "$t" -ge "$next_owner_check" ]; then
    next_owner_check=$((t + HUBSPOKE_STANDBY_OWNER_CHECK))
    { owner >"$run/owner.tmp" && mv -f "$run/owner.tmp" "$run/owner"; } &
  fi
  if [ -s "$run/owner" ]; then
    read -r current <"$run/owner"
    : >"$run/owner"
    if [ "${current%/*}" = "$my_eni" ]; then
      activate "the site's Elastic IP is on this gateway ($current)" no
      continue
    elif [ "$current" = none ] && ! drained; then
      unowned_since=${unowned_since:-$t}
      if [ $((t - unowned_since)) -ge "$HUBSPOKE_UNOWNED_GRACE" ]; then
        activate "the site's Elastic IP has been on no gateway for $((t - unowned_since))s" yes
        continue
      fi
    else
      unowned_since=""
    fi
  fi
  # Drained or undrained just now (its agent woke this loop): checked and reported at once, not next round.
  now_drained=no
  drained && now_drained=yes
  [ "$now_drained" = "$was_drained" ] || { was_drained=$now_drained next_metric=$t; }
  if [ "$t" -ge "$next_metric" ]; then
    next_metric=$((t + HUBSPOKE_METRIC_INTERVAL))
    orient # a pluto that restarted meanwhile: oriented now, not on a takeover's critical path
    drop_standby_states
    standby_check &
  fi
  pause "$HUBSPOKE_PROBE_INTERVAL"
done
