#!/bin/sh
# Times `banctl list --json | wc -l` against a running banwatchd (firewall
# "log", so no root is needed) holding N active bans (default 100,000).
#
#   bench/list.sh [N]
set -eu
n=${1:-100000}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/" ./cmd/banwatchd ./cmd/banctl ./bench/cmd/fillstore
printf '[daemon]\nstate_dir = "%s/state"\nsocket = "%s/sock"\nfirewall = "log"\n' "$dir" "$dir" > "$dir/banwatch.toml"
"$dir/fillstore" -db "$dir/state/banwatch.db" -n "$n"
"$dir/banwatchd" --config "$dir" 2> "$dir/log" &
pid=$!
while ! grep -q 'banwatchd running' "$dir/log"; do sleep 0.1; done
for i in 1 2 3; do
	/usr/bin/time -f "banctl list --json | wc -l: %e s" sh -c "'$dir/banctl' list --json --socket '$dir/sock' | wc -l"
done
