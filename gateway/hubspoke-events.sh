#!/bin/bash
# hubspoke-events: ships this gateway's tunnel events to CloudWatch Logs, one JSON line each, so that
# on-call sees why a tunnel is down without logging in (README, Operations; docs/events.md).
#
# It reads what pluto, hubspoke-agent and hubspoke-failover wrote to the journal since its cursor,
# keeps the lines of its catalogue (established, rekeyed, deleted by the peer, authentication failed,
# no proposal chosen, traffic selectors refused, retransmits exhausted, dead peer, left out and changed
# by the agent, takeover, step-down, handover), and appends one event per line to a spool in its state directory. Then it
# puts the spool to its own log stream, oldest first, and removes what CloudWatch took. The journal's
# cursor moves once the events are in the spool, the spool shrinks once CloudWatch has them: an
# outage of the network or of CloudWatch loses nothing (the spool holds up to
# $HUBSPOKE_EVENTS_SPOOL_MAX events, the oldest dropped beyond, with a count), and delivery resumes
# where it stopped.
#
# Bounds: an event of one kind for one tunnel is sent at most once per $HUBSPOKE_EVENTS_COALESCE s;
# the ones in between are counted, and the next one sent carries the count (`repeats`). A flapping
# tunnel sends at most one event per kind and window. Secrets: a line that mentions a PSK never
# becomes an event's detail, and any run of $HUBSPOKE_PSK_MIN_LENGTH or more key characters in a
# detail is replaced.
#
#   hubspoke-events              read, spool and send (hubspoke-events.timer: every few seconds)
#   hubspoke-events --classify   read journal lines (`journalctl -o short-unix`) on stdin and print
#                                their events, one JSON line each; reads and writes no state
#
# Settings: the env file $HUBSPOKE_ENV (rendered by the program from gateway/contract.ts). The lab and
# the tests set HUBSPOKE_JOURNALCTL (a journal of files) and HUBSPOKE_AWS_ARGS (its local endpoint).
set -u -o pipefail
umask 077
export TZ=UTC LC_ALL=C

# shellcheck disable=SC1090
. "${HUBSPOKE_ENV:-/etc/hubspoke-vpn/gateway.env}" || { echo "hubspoke-events: cannot read its settings" >&2; exit 1; }
state=$HUBSPOKE_STATE_DIR
# Its log stream is named after the gateway.
gateway=$HUBSPOKE_EVENTS_LOG_STREAM
journalctl=journalctl
[ -z "${HUBSPOKE_JOURNALCTL:-}" ] || journalctl=$HUBSPOKE_JOURNALCTL
key_run="[$HUBSPOKE_PSK_CHARACTERS]{$HUBSPOKE_PSK_MIN_LENGTH,}"

log() { echo "hubspoke-events: $*" >&2; }

# Sets the variable $1 to the JSON of $2: a string (quotes included), or null when $2 is empty.
json() {
  local s=$2
  [ -n "$s" ] || { printf -v "$1" null; return; }
  s=${s//\\/\\\\} s=${s//\"/\\\"} s=${s//$'\t'/\\t} s=${s//$'\r'/\\r} s=${s//$'\n'/\\n}
  s=${s//[$'\001'-$'\037']/}
  printf -v "$1" '"%s"' "$s"
}

# Each tunnel end's peer (right=) and whether dead-peer detection is on (dpddelay=), from its conn.
declare -A peer_of=() dpd_of=()
read_conns() {
  local f t line
  for f in "$HUBSPOKE_IPSEC_D"/*.conf; do
    [ -f "$f" ] || continue
    t=${f##*/} t=${t%.conf}
    dpd_of[$t]=false
    while IFS= read -r line; do
      [[ $line =~ ^[[:space:]]*right=([0-9.]+)[[:space:]]*$ ]] && peer_of[$t]=${BASH_REMATCH[1]}
      [[ $line =~ ^[[:space:]]*dpddelay= ]] && dpd_of[$t]=true
    done <"$f"
  done
}

# The limiter's and the tunnels' memory: `last <event>@<tunnel> <epoch s> <repeats>`, `natt <tunnel> <true|false>`,
# `rekey <tunnel> <epoch s>` (its last IKE rekey).
declare -A last_sent=() repeats=() natt_of=() ike_rekeyed_at=()
load_memory() {
  local kind k a b
  [ -f "$1" ] || return 0
  while read -r kind k a b; do
    case $kind in
      last) last_sent[$k]=$a repeats[$k]=$b ;;
      natt) natt_of[$k]=$a ;;
      rekey) ike_rekeyed_at[$k]=$a ;;
    esac
  done <"$1"
}
save_memory() {
  local k
  for k in "${!last_sent[@]}"; do echo "last $k ${last_sent[$k]} ${repeats[$k]:-0}"; done
  for k in "${!natt_of[@]}"; do echo "natt $k ${natt_of[$k]}"; done
  for k in "${!ike_rekeyed_at[@]}"; do echo "rekey $k ${ike_rekeyed_at[$k]}"; done
}

# One journal line in, its event out (or nothing): `epoch_ms<TAB>json`. The catalogue: docs/events.md.
classify_line() {
  local line=$1 msg tunnel="" event="" ike="" child="" detail k sec ms
  [[ $line =~ ^([0-9]+)\.([0-9]{3})[0-9]*\ [^\ ]+\ [^:]+:\ (.*)$ ]] || return 0
  sec=${BASH_REMATCH[1]} ms=${BASH_REMATCH[2]} msg=${BASH_REMATCH[3]}
  # hubspoke-failover prints its own time first, and pluto does when its config says logtime: the
  # journal's time is the one kept.
  msg=${msg#[0-9][0-9]:[0-9][0-9]:[0-9][0-9] }
  [[ $msg =~ ^[A-Z][a-z][a-z]\ [\ 0-9][0-9]\ [0-9:]{8}\.[0-9]+:\ (.*)$ ]] && msg=${BASH_REMATCH[1]}
  if [[ $msg =~ ^\"([^\"]+)\"[^\ ]*(\ [0-9.]+)?\ \#[0-9]+:\ (.*)$ ]]; then
    tunnel=${BASH_REMATCH[1]} detail=${BASH_REMATCH[3]}
    case $detail in
      *"initiator established Child SA"* | *"responder established Child SA"*) event=established ike=established child=established ;;
      *"rekeyed Child SA"* | *"rekeyed IKE SA"*) event=rekeyed ike=established child=established ;;
      # The peer's Delete: pluto deletes the established IKE SA without a notification of its own
      # (deleting it on its own, it sends one). A responder's IKE rekey deletes the old SA the same way.
      *"deleting state (STATE_V2_ESTABLISHED_IKE_SA)"*"and NOT sending notification"*)
        if [ $((sec - ${ike_rekeyed_at[$tunnel]:-0})) -gt 5 ]; then event=deleted-by-peer ike=down child=down; fi ;;
      *"authentication failed"* | *AUTHENTICATION_FAILED*) event=authentication-failed ike=down child=down ;;
      # A Child SA's proposals: the IKE SA is up (IKE_AUTH's Child SA, or a CREATE_CHILD_SA exchange).
      *"rejected Child SA with NO_PROPOSAL_CHOSEN"* | *"ESP/AH proposals failed"* | *"CREATE_CHILD_SA request failed"*NO_PROPOSAL_CHOSEN*) event=no-proposal-chosen ike=established child=down ;;
      *TS_UNACCEPTABLE*) event=traffic-selectors-refused ike=established child=down ;;
      *NO_PROPOSAL_CHOSEN* | *"no proposal chosen"* | *"no acceptable proposal"*) event=no-proposal-chosen ike=down child=down ;;
      # The first exchange unanswered (an established SA's is the liveness check: dead-peer below).
      *"timeout exceeded after"*"to our first IKEv2 message"*) event=retransmits-exhausted ike=down child=down ;;
      *"liveness action - "*) event=dead-peer ike=down child=down ;;
    esac
    [[ $detail == *"rekeyed IKE SA"* ]] && ike_rekeyed_at[$tunnel]=$sec
    # NAT-T: an established Child SA says ESPinUDP when its ESP travels in UDP (a NAT was detected).
    if [[ $event == established || $detail == *"rekeyed Child SA"* ]]; then
      if [[ $detail == *ESPinUDP* ]]; then natt_of[$tunnel]=true; else natt_of[$tunnel]=false; fi
    fi
  elif [[ $msg =~ ^hubspoke-agent:\ ([a-z0-9-]+):\ (.*)$ ]]; then
    tunnel=${BASH_REMATCH[1]} detail=${BASH_REMATCH[2]}
    case $detail in
      *"; left out" | *"; keeping its last good files" | "pluto refused the conn"*) event=left-out ;;
      "added and initiated" | "conn changed: replaced and re-established" | "removed "* | "key changed"* | "re-authenticating with the new key") event=agent-changed ;;
    esac
  elif [[ $msg =~ ^hubspoke-failover:\ (.*)$ ]]; then
    detail=${BASH_REMATCH[1]}
    case $detail in
      "taking over the site: "*) event=takeover ;;
      "stepping down: "*) event=step-down ;;
      "handing the site to "* | *"did not take the site within"* | *"asks to hand the site over; refused"*) event=handover ;;
    esac
  fi
  [ -n "$event" ] || return 0
  # Never a key: a line about a PSK keeps no detail; a long run of key characters is cut out.
  if [[ $detail == *PSK* || $detail == *secrets\ line* ]]; then detail="(detail withheld: it mentions a key)"; fi
  while [[ $detail =~ $key_run ]]; do detail=${detail/"${BASH_REMATCH[0]}"/[redacted]}; done
  k="$event@${tunnel:-site}"
  if [ -n "${last_sent[$k]:-}" ] && [ $((sec - last_sent[$k])) -lt "$HUBSPOKE_EVENTS_COALESCE" ] && [ "$sec" -ge "${last_sent[$k]}" ]; then
    repeats[$k]=$((${repeats[$k]:-0} + 1))
    return 0
  fi
  local j_stack j_region j_gateway j_tunnel j_peer j_ike j_child j_detail peer="" dpd=null natt=null
  [ -z "$tunnel" ] || peer=${peer_of[$tunnel]:-} dpd=${dpd_of[$tunnel]:-null} natt=${natt_of[$tunnel]:-null}
  json j_stack "$HUBSPOKE_STACK"; json j_region "$HUBSPOKE_REGION_NAME"; json j_gateway "$gateway"
  json j_tunnel "$tunnel"; json j_peer "$peer"; json j_ike "$ike"; json j_child "$child"
  json j_detail "${detail:0:1000}"
  printf '%s%s\t{"time":"%(%Y-%m-%dT%H:%M:%S)T.%sZ","stack":%s,"region":%s,"gateway":%s,"tunnel":%s,"peer":%s,"event":"%s","ikeState":%s,"childState":%s,"dpd":%s,"natt":%s,"repeats":%s,"detail":%s}\n' \
    "$sec" "$ms" "$sec" "$ms" "$j_stack" "$j_region" "$j_gateway" "$j_tunnel" "$j_peer" "$event" "$j_ike" "$j_child" \
    "$dpd" "$natt" "${repeats[$k]:-0}" "$j_detail"
  last_sent[$k]=$sec repeats[$k]=0
}

classify() {
  local line
  while IFS= read -r line; do classify_line "$line"; done
}

if [ "${1:-}" = --classify ]; then
  read_conns
  classify
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: hubspoke-events [--classify]" >&2
  exit 2
fi

mkdir -p "$state"
exec 9>"$state/$HUBSPOKE_STATE_EVENTS.lock"
flock -n 9 || exit 0
spool=$state/$HUBSPOKE_STATE_EVENTS.spool cursor_file=$state/$HUBSPOKE_STATE_EVENTS.cursor memory=$state/$HUBSPOKE_STATE_EVENTS.memory

# 1. The journal since the cursor (this boot's, the first time) into the spool.
cursor=$(cat "$cursor_file" 2>/dev/null)
units=()
for u in $HUBSPOKE_EVENTS_UNITS; do units+=(-u "$u"); done
since=(-b)
[ -z "$cursor" ] || since=("--after-cursor=$cursor")
if journal=$("$journalctl" "${units[@]}" "${since[@]}" --no-pager -o short-unix --show-cursor \
  2>"$state/$HUBSPOKE_STATE_EVENTS.err"); then
  next=$(sed -n 's/^-- cursor: //p' <<<"$journal" | tail -1)
  if [ -n "$next" ]; then
    read_conns
    load_memory "$memory"
    # Not in a pipeline: the limiter's memory lives in this shell.
    classify < <(grep -v '^-- ' <<<"$journal") >"$spool.new"
    sort -s -n -k1,1 "$spool.new" >>"$spool" && rm -f "$spool.new"
    save_memory >"$memory.tmp" && mv -f "$memory.tmp" "$memory"
    printf '%s\n' "$next" >"$cursor_file.tmp" && mv -f "$cursor_file.tmp" "$cursor_file"
  fi
else
  log "reading the journal failed: $(tr '\n' ' ' <"$state/$HUBSPOKE_STATE_EVENTS.err")"
fi

# A spool past its bound (a long outage) keeps the newest events, and says how many it dropped.
if [ -s "$spool" ] && [ "$(wc -l <"$spool")" -gt "$HUBSPOKE_EVENTS_SPOOL_MAX" ]; then
  dropped=$(($(wc -l <"$spool") - HUBSPOKE_EVENTS_SPOOL_MAX))
  tail -n "$HUBSPOKE_EVENTS_SPOOL_MAX" "$spool" >"$spool.tmp" && mv -f "$spool.tmp" "$spool"
  log "the spool held more than $HUBSPOKE_EVENTS_SPOOL_MAX events: dropped the $dropped oldest"
fi

# 2. The spool to CloudWatch Logs, oldest first, a batch at a time; what it took leaves the spool.
while [ -s "$spool" ]; do
  head -n "$HUBSPOKE_EVENTS_BATCH" "$spool" >"$spool.batch"
  n=$(wc -l <"$spool.batch")
  {
    printf '['
    sep="" message=""
    while IFS=$'\t' read -r ms event; do
      json message "$event"
      printf '%s{"timestamp":%s,"message":%s}' "$sep" "$ms" "$message"
      sep=,
    done <"$spool.batch"
    printf ']'
  } >"$spool.json"
  # shellcheck disable=SC2086 # HUBSPOKE_AWS_ARGS is a list of arguments
  if ! aws logs put-log-events --region "$HUBSPOKE_AWS_REGION" ${HUBSPOKE_AWS_ARGS:-} \
    --log-group-name "$HUBSPOKE_EVENTS_LOG_GROUP" --log-stream-name "$HUBSPOKE_EVENTS_LOG_STREAM" \
    --log-events "file://$spool.json" >/dev/null 2>"$spool.err"; then
    log "put-log-events failed ($(wc -l <"$spool") events kept for the next try): $(tr '\n' ' ' <"$spool.err")"
    exit 1
  fi
  tail -n +"$((n + 1))" "$spool" >"$spool.tmp" && mv -f "$spool.tmp" "$spool"
done
rm -f "$spool.batch" "$spool.json" "$spool.err"
