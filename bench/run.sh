#!/usr/bin/env bash
# Runs pier's benchmarks; results go to stdout and bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
mkdir -p bench/out
go run ./bench/deploy "$@" | tee bench/out/deploy.txt
./bench/gateway/run.sh | tee bench/out/gateway.txt
./bench/tasks/run.sh | tee bench/out/tasks.txt
go run ./bench/errors | tee bench/out/errors.txt
./bench/metrics/run.sh | tee bench/out/metrics.txt
go run ./bench/search | tee bench/out/search.txt
