#!/usr/bin/env bash
# Installs what pier's tests need, and only what is missing: safe to run
# again and again. Debian packages come from apt, JavaScript ones from npm
# (into test/node, with its lockfile).
set -euo pipefail

need_apt=()
# want PACKAGE [COMMAND]: install PACKAGE unless it (or COMMAND, when the
# machine has it from elsewhere, like Node from NodeSource) is present.
want() {
	if [ -n "${2:-}" ] && command -v "$2" >/dev/null 2>&1; then return; fi
	dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1")
}

want python3 /usr/bin/python3   # the Python example and builds use Debian's python3
want python3-pip                # pip for requirements.txt (driven as /usr/bin/python3 -m pip)
want python3-venv
want nodejs /usr/bin/node
want npm npm
want curl curl
want procps pkill               # ps/pkill in tests and scripts
want python3-prometheus-client  # the reference parser checks pier's /metrics exposition
want chromium /usr/bin/chromium  # the dashboard's browser test (playwright-core drives it)

if [ ${#need_apt[@]} -gt 0 ]; then
	echo "test-deps: installing ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "test-deps: Go is missing (expected at /usr/local/go/bin)"; exit 1; }
# JavaScript clients the tests drive (fivebeans for beanstalkd, ...), from
# test/node's lockfile; again only when the lockfile changed since.
node_dir="$(dirname "$0")/../test/node"
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
	echo "test-deps: npm ci in test/node"
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "test-deps: ok"
