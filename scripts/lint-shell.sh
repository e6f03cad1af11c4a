#!/usr/bin/env bash
# Every shell script of the repository (a tracked file with a sh or bash shebang) through shellcheck,
# Debian's package (scripts/install-system-deps.sh installs it). Any finding fails, at any severity,
# except in gateway/: there warnings and errors fail, notes (info, style) do not. A change to a gateway
# script changes every gateway's user data, and that replaces the gateway, so the notes left in
# hubspoke-agent.sh (SC2015) wait for a change that replaces the gateways anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null || { echo "lint-shell: shellcheck is missing; run: bash scripts/install-system-deps.sh" >&2; exit 1; }
scripts=() gateway=()
while IFS= read -r f; do
  head -n1 "$f" | grep -Eq '^#!.*(/|env )(ba)?sh\b' || continue
  case $f in gateway/*) gateway+=("$f") ;; *) scripts+=("$f") ;; esac
done < <(git ls-files)
shellcheck "${scripts[@]}"
shellcheck --severity=warning "${gateway[@]}"
echo "lint-shell: ${#scripts[@]} scripts clean; ${#gateway[@]} gateway scripts free of warnings"
