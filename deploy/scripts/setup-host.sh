#!/usr/bin/env bash
# Prepare a bare-metal host for weir: hugepages, the NIC bound to vfio-pci, a `weir` user
# that may use them, and guidance for isolated cores. Idempotent; run as root.
#
#   deploy/scripts/setup-host.sh [--pages-2m N] [--pages-1g N] [--user weir] PCI_ADDR...
#
# e.g. deploy/scripts/setup-host.sh --pages-1g 4 0000:03:00.0 0000:03:00.1
#
# References: DPDK Linux guide, "System Requirements" (hugepages) and "Linux Drivers" (vfio-pci,
# dpdk-devbind.py); kernel-parameters.txt for isolcpus, nohz_full, rcu_nocbs.
set -euo pipefail

pages_2m=1024
pages_1g=0
user=weir
devices=()

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --pages-2m) pages_2m="$2"; shift 2 ;;
        --pages-1g) pages_1g="$2"; shift 2 ;;
        --user) user="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option $1" >&2; usage 2 ;;
        *) devices+=("$1"); shift ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host.sh: run as root" >&2
    exit 1
fi

# 1. Hugepages, reserved on every NUMA node evenly (DPDK allocates per socket).
nodes=(/sys/devices/system/node/node[0-9]*)
n_nodes=${#nodes[@]}
reserve() {
    local size_kb="$1" total="$2" per_node
    [ "$total" -gt 0 ] || return 0
    per_node=$(( (total + n_nodes - 1) / n_nodes ))
    for node in "${nodes[@]}"; do
        local f="$node/hugepages/hugepages-${size_kb}kB/nr_hugepages"
        if [ -w "$f" ]; then
            echo "$per_node" > "$f"
            echo "$(basename "$node"): $(cat "$f") hugepages of ${size_kb} kB"
        else
            echo "warning: $f not available (1G pages may need hugepagesz=1G on the kernel command line)" >&2
        fi
    done
}
reserve 2048 "$pages_2m"
reserve 1048576 "$pages_1g"
mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages; then
    mount -t hugetlbfs nodev /dev/hugepages
fi

# 2. The user weir runs as, owning the hugepage mount.
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/weir --shell /usr/sbin/nologin "$user"
fi
chown "$user" /dev/hugepages

# 3. vfio-pci for each NIC port (the IOMMU must be on: intel_iommu=on iommu=pt).
if [ "${#devices[@]}" -gt 0 ]; then
    modprobe vfio-pci
    devbind=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
    if [ -z "$devbind" ]; then
        echo "dpdk-devbind.py not found: apt-get install dpdk" >&2
        exit 1
    fi
    if [ ! -d /sys/kernel/iommu_groups ] || [ -z "$(ls -A /sys/kernel/iommu_groups)" ]; then
        echo "warning: no IOMMU groups: add intel_iommu=on iommu=pt (or amd_iommu=on) to the kernel command line" >&2
    fi
    for dev in "${devices[@]}"; do
        "$devbind" --bind=vfio-pci "$dev"
        group=$(basename "$(readlink -f "/sys/bus/pci/devices/$dev/iommu_group")")
        chown "$user" "/dev/vfio/$group"
        echo "$dev bound to vfio-pci (IOMMU group $group, /dev/vfio/$group owned by $user)"
    done
    "$devbind" --status-dev net
fi

# 4. Isolated cores: only advice, the kernel command line is the operator's.
cat <<ADVICE

Cores for weir's workers should be isolated from the scheduler and timer ticks. On the kernel
command line (/etc/default/grub, then update-grub and reboot), for workers on cores 2-5:

    isolcpus=2-5 nohz_full=2-5 rcu_nocbs=2-5 intel_iommu=on iommu=pt default_hugepagesz=1G hugepagesz=1G hugepages=4

then in /etc/weir/weir.toml:  [workers] count = 4, cores = [2, 3, 4, 5]
Keep the workers and the NIC on one NUMA node: cat /sys/bus/pci/devices/<PCI>/numa_node
Currently isolated: $(cat /sys/devices/system/cpu/isolated 2>/dev/null || echo unknown)
ADVICE
