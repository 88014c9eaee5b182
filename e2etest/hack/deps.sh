#!/usr/bin/env bash
# Installs the Debian packages the test bed needs, when any is missing.
# Needs root; without it, fails and says which packages to install.
#
#   deps.sh         the process-based bed
#   deps.sh nodes   also containerd, runc and the CNI plugins, for the
#                   real-nodes bed (each node runs its own containerd; the
#                   packaged service is never started)
set -euo pipefail
PACKAGES=(etcd-server frr bird2 iptables nftables conntrack iproute2 procps arping ndisc6 tcpdump gobgpd curl ethtool util-linux)
NODE_PACKAGES=(containerd runc containernetworking-plugins)
if [[ "${1:-}" == nodes ]]; then
	PACKAGES+=("${NODE_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "test bed packages: all installed"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "e2etest deps: missing Debian packages: ${missing[*]}; run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# No package may start its service here (containerd's would run as the host's
# runtime): a policy-rc.d that refuses, only for this install, only if the
# machine has none.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
trap '[[ $own_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
