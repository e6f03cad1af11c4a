#!/usr/bin/env bash
# Every shell script of the repository (a tracked file with a sh or bash shebang) through shellcheck,
# Debian's package (scripts/install-system-deps.sh installs it). Any finding fails, at any severity,
# except in gateway/: there only errors fail, until the next change to the gateways' bootstrap. A
# change to those scripts changes every gateway's user data, and that replaces every gateway, so the
# warnings found there today wait for a replacement that happens anyway (SC2034 in
# hubspoke-failover.sh, and SC2015/SC2295 notes).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null || { echo "lint-shell: shellcheck is missing; run: bash scripts/install-system-deps.sh" >&2; exit 1; }
scripts=() gateway=()
while IFS= read -r f; do
  head -n1 "$f" | grep -Eq '^#!.*(/|env )(ba)?sh\b' || continue
  case $f in gateway/*) gateway+=("$f") ;; *) scripts+=("$f") ;; esac
done < <(git ls-files)
shellcheck "${scripts[@]}"
shellcheck --severity=error "${gateway[@]}"
echo "lint-shell: ${#scripts[@]} scripts clean; ${#gateway[@]} gateway scripts free of errors"
