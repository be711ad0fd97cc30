#!/usr/bin/env bash
# Builds pier, starts the engine in the background with its defaults and
# deploys the bundled Python example, then prints where to look.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"
mkdir -p bin
go build -o bin/pier ./cmd/pier
PIER_HOME="${PIER_HOME:-$HOME/.pier}"
mkdir -p "$PIER_HOME"
API="${PIER_API:-http://127.0.0.1:7070}"

if ! curl -fsS "$API/v1/health" >/dev/null 2>&1; then
	echo "-----> Starting the engine (log: $PIER_HOME/engine.log)"
	setsid nohup bin/pier up --home "$PIER_HOME" >>"$PIER_HOME/engine.log" 2>&1 </dev/null &
	echo $! >"$PIER_HOME/engine.pid"
	for _ in $(seq 1 100); do
		curl -fsS "$API/v1/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "$API/v1/health" >/dev/null || { echo "pier did not start; see $PIER_HOME/engine.log"; tail -20 "$PIER_HOME/engine.log"; exit 1; }
fi

bin/pier deploy examples/hello-python
echo
echo "Open:"
echo "  http://hello-python.localhost:8080/     the example app"
echo "  curl -H 'Host: hello-python.localhost' http://127.0.0.1:8080/"
echo "  $API/                the dashboard (log in with the token in $PIER_HOME/token)"
echo
echo "Then try: bin/pier apps · bin/pier ps --app hello-python · bin/pier logs -f --app hello-python"
echo "Stop the engine: kill \$(cat $PIER_HOME/engine.pid)"
