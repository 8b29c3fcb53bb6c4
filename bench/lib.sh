# Shared by the benchmarks: a baseline "cluster" of plain namespaces with
# no BPF (two nodes on a bridge in a fabric namespace, like the lab's
# segments; pods on veth pairs with /32 routes, the node answering for
# their gateway 169.254.1.1), iperf3
# helpers and cleanup. Every namespace is prefixed with $BL.

gbps() { jq -r '.end.sum_received.bits_per_second / 1e9'; }

wait_listening() { # command... ; polls until it succeeds (5 s)
  for _ in $(seq 100); do "$@" && return 0; sleep 0.05; done
  echo "timed out: $*" >&2; return 1
}

bl_cleanup() {
  # Processes left in our namespaces (an iperf3 server whose client
  # failed), then the namespaces.
  for n in fabric na nb p1 p2 p3; do
    ip netns pids "$BL-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$BL-$n" 2>/dev/null || true
  done
}

bl_pod() { # pod node ip gateway-prefix
  ip -n "$BL-$2" link add "v$1" type veth peer name eth0 netns "$BL-$1"
  ip -n "$BL-$1" addr add "$3/32" dev eth0
  ip -n "$BL-$1" link set eth0 up; ip -n "$BL-$1" link set lo up
  ip -n "$BL-$2" link set "v$1" up
  ip -n "$BL-$1" route add 169.254.1.1 dev eth0 scope link
  ip -n "$BL-$1" route add default via 169.254.1.1 dev eth0 ${4:+mtu $4}
  ip -n "$BL-$2" addr add 169.254.1.1/32 dev "v$1"   # the pods' gateway, answered by the node
  ip -n "$BL-$2" route add "$3/32" dev "v$1" scope link
}

# Nodes na (192.0.2.1) and nb (192.0.2.2) on a bridge; pods p1, p2 on na
# (10.77.0.11, .12) and p3 on nb (10.77.1.13). $1: route MTU for pods.
bl_build() {
  for n in fabric na nb p1 p2 p3; do ip netns add "$BL-$n"; done
  ip -n "$BL-fabric" link add br0 type bridge; ip -n "$BL-fabric" link set br0 up
  local i=0
  for n in na nb; do
    i=$((i + 1))
    ip -n "$BL-fabric" link add "h$i" type veth peer name eth1 netns "$BL-$n"
    ip -n "$BL-fabric" link set "h$i" master br0 up
    ip -n "$BL-$n" addr add "192.0.2.$i/24" dev eth1; ip -n "$BL-$n" link set eth1 up
    ip -n "$BL-$n" link set lo up
    ip netns exec "$BL-$n" sysctl -q -w net.ipv4.ip_forward=1
  done
  bl_pod p1 na 10.77.0.11 "${1:-}"; bl_pod p2 na 10.77.0.12 "${1:-}"; bl_pod p3 nb 10.77.1.13 "${1:-}"
}

# iperf3 from a baseline pod to an address; prints Gbit/s.
bl_iperf() { # from-pod server-pod server-ip seconds
  ip netns exec "$BL-$2" iperf3 -s -D -1 >/dev/null
  wait_listening ip netns exec "$BL-$2" sh -c 'ss -ltn | grep -q :5201'
  ip netns exec "$BL-$1" iperf3 -c "$3" -t "$4" -J | gbps
}

# The same in a lab: client pod to a webpod on a node; prints Gbit/s.
lab_iperf() { # lab-cli server-node seconds
  local cli=$1 node=$2 t=$3 pod ip
  read -r pod ip < <($cli get pods -o wide | awk -v n="$node" '$1 ~ /^webpod-/ && $7 == n { print $1, $6; exit }')
  $cli exec "$pod" -- iperf3 -s -D -1 >/dev/null
  wait_listening $cli exec "$pod" -- sh -c 'ss -ltn | grep -q :5201'
  $cli exec curl-pod -- iperf3 -c "$ip" -t "$t" -J | gbps
}

# Median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
