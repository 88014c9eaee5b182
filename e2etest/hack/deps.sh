#!/usr/bin/env bash
# Installs the Debian packages the test bed needs, when any is missing.
# Needs root; without it, fails and says which packages to install.
set -euo pipefail
PACKAGES=(etcd-server frr iptables nftables conntrack iproute2 procps arping ndisc6 tcpdump gobgpd curl ethtool)

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
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
