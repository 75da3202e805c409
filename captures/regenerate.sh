#!/usr/bin/env bash
# Re-record the capture corpus from a fresh lab: one pcap + ground-truth sidecar per scenario.
# Run as root from the repository root after `make setup`:  captures/regenerate.sh [SCENARIO ...]
set -euo pipefail
cd "$(dirname "$0")/.."
kshock=.venv/bin/kshock
lab=capture
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(kafka-python compression group admin large slow-link mixed)
trap '$kshock lab down --name $lab >/dev/null' EXIT
$kshock lab down --name $lab >/dev/null
$kshock lab up --name $lab --clients 3
for scenario in "${scenarios[@]}"; do
  $kshock lab record --name $lab "$scenario" "captures/lab-$scenario.pcap"
done
