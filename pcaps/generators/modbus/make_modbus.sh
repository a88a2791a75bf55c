#!/usr/bin/env bash
# Regenerate pcaps/modbus/*.pcap from a real Modbus stack (pymodbus 3.16 server and
# client over loopback), captured with tcpdump on lo, then record them in pcaps/MANIFEST.
#
# usage (as root, tcpdump needs it and the main captures use port 502):
#   pcaps/generators/modbus/make_modbus.sh            # all captures
#   pcaps/generators/modbus/make_modbus.sh polling    # only some (names below)
# environment: PYTHON (default: the project's .venv/bin/python, which needs
#   pymodbus==3.16.*), KEEP_WORK=1 keeps the temporary directory with the logs.
#
# Each capture: tcpdump is started and the script waits until it listens; the
# server is started and the script waits for its READY line; the client runs its
# fixed scenario; then the server gets SIGTERM and tcpdump SIGINT, each waited for
# by PID.  A capture is written to pcaps/modbus/ only if the client saw exactly the
# outcomes it expected, tcpdump dropped nothing and tshark finds what it should.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PCAPS=$(cd "$HERE/../.." && pwd)
OUT="$PCAPS/modbus"
PYTHON=${PYTHON:-"$PCAPS/../.venv/bin/python"}
GENERATOR="generators/modbus/make_modbus.sh"

# name -> "transport port scenario tcp-streams"
declare -A SPEC=(
  [pymodbus_all_functions]="tcp 502 all_functions 1"
  [pymodbus_port5020]="tcp 5020 short 1"
  [pymodbus_udp]="udp 502 udp 0"
  [pymodbus_polling]="tcp 502 polling 1"
  [pymodbus_two_clients]="tcp 502 two_clients 2"
  [pymodbus_rtu_over_tcp]="tcp 502 rtu 1"
  [pymodbus_rtu_over_tcp4001]="tcp 4001 rtu 1"
  [pymodbus_ascii_over_tcp]="tcp 502 ascii 1"
  [pymodbus_write_all]="tcp 502 write_all 1"
)
ORDER=(pymodbus_all_functions pymodbus_port5020 pymodbus_udp pymodbus_polling pymodbus_two_clients
       pymodbus_rtu_over_tcp pymodbus_rtu_over_tcp4001 pymodbus_ascii_over_tcp pymodbus_write_all)

declare -A CONTENT=(
  [pymodbus_all_functions]="pymodbus 3.16.1 client+server, TCP 502, one connection, 88 transactions in fixed order: FC1/2/3/4 reads, FC5/6/15/16/22/23 writes with read-back, FC7, FC8 sub-functions 0-4 and 10-21, FC11, FC12, FC17, FC20, FC21, FC24, FC43/14 read codes 1-4 (incl. private object 0x80); units 1, 17, 247; unit 99 not served (exception 4); exceptions 2 (address/read-only), 3 (FC15/16 bad quantity or byte count, FC43 read code 5), 1 (FC43/13), 4 (FC8/5); FC3 quantity 0 and 126, FC9 and FC65 answered with function code 0x80 exception 1 (pymodbus behaviour)"
  [pymodbus_port5020]="pymodbus 3.16.1 client+server on non-standard TCP port 5020, one connection, 14 transactions: FC1/2/3/4 reads, FC5/6/15/16 writes with read-back, unit 17 read, FC43/14 read codes 1-2, one exception 2 (illegal data address)"
  [pymodbus_udp]="pymodbus 3.16.1 Modbus/TCP framing over UDP port 502, 14 request/response datagram pairs: FC1/2/3/4 reads, FC5/6/15/16 writes with read-back, unit 17 read, FC43/14 read codes 1-2, one exception 2 (illegal data address)"
  [pymodbus_polling]="pymodbus 3.16.1 HMI-style polling on TCP 502, one connection: FC3 holding 0-9 then FC1 coils 0-7 every 100 ms for 60 cycles (6 s), one FC6 write (holding 5 = 1500) between cycles 30 and 31, unit 1"
  [pymodbus_rtu_over_tcp]="pymodbus 3.16.1 client+server with RTU framing (address, PDU, CRC-16; no MBAP) over TCP 502, as serial device servers and gateways in RTU-over-TCP mode carry it, one connection, 17 transactions: the port 5020 file's 14 (FC1/2/3/4 reads, FC5/6/15/16 writes with read-back, unit 17 read, FC43/14 read codes 1-2, one exception 2), then FC8/0 return query data, FC8/1 restart communications, FC3 read"
  [pymodbus_rtu_over_tcp4001]="the same RTU-over-TCP scenario on TCP 4001 (a serial device server's data port, no Modbus port hint)"
  [pymodbus_ascii_over_tcp]="pymodbus 3.16.1 client+server with ASCII framing (colon, hex digits, LRC, CR LF; no MBAP) over TCP 502, one connection, the port 5020 file's 14 transactions (FC1/2/3/4 reads, FC5/6/15/16 writes with read-back, unit 17 read, FC43/14 read codes 1-2, one exception 2)"
  [pymodbus_write_all]="pymodbus 3.16.1 client+server, TCP 502, one connection: 5 FC3 polls, then a slow \"write all\" (Smod style): FC6 0xFFFF to holding 0-199 one by one, 25 a second (8 s), then FC15 all 128 coils ON in 8 blocks of 16 with an FC3 poll after each, unit 1"
  [pymodbus_two_clients]="pymodbus 3.16.1 server with two client connections on TCP 502 (different source ports), 6 transactions each, interleaved A,B,A,B; both connections use transaction ids 1-6, so request/response pairing must be per flow; includes one exception 2"
)

log() { printf '%s\n' "make_modbus: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (tcpdump on lo, server on port 502)"
command -v tcpdump >/dev/null || die "tcpdump not found"
command -v tshark >/dev/null || die "tshark not found"
"$PYTHON" -c 'import pymodbus, sys; sys.exit(0 if pymodbus.__version__.startswith("3.16.") else 1)' \
  || die "$PYTHON needs pymodbus 3.16.x (pip install 'pymodbus==3.16.*')"

WORK=$(mktemp -d /tmp/make_modbus.XXXXXX)
TCPDUMP_PID="" SERVER_PID="" CLIENT_PID=""

stop_pid() {  # stop_pid PID SIGNAL: signal one process we started and wait for it
  local pid=$1 sig=$2 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "PID $pid ignored SIG$sig, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$CLIENT_PID" TERM
  stop_pid "$SERVER_PID" TERM
  stop_pid "$TCPDUMP_PID" INT
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {  # wait_for FILE PATTERN PID WHAT: until FILE has PATTERN, PID alive, 10 s
  local file=$1 pattern=$2 pid=$3 what=$4 i
  for i in $(seq 100); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "$what exited early"; }
    sleep 0.1
  done
  cat "$file" >&2
  die "$what not ready after 10 s"
}

port_busy() {  # port_busy tcp|udp PORT
  local flags=-Hltn
  [ "$1" = udp ] && flags=-Hlun
  [ -n "$(ss "$flags" "sport = :$2")" ]
}

capture() {  # capture NAME
  local name=$1 transport port scenario streams pcap rc
  read -r transport port scenario streams <<<"${SPEC[$name]}"
  pcap="$WORK/$name.pcap"
  port_busy "$transport" "$port" && die "$transport port $port is in use; stop whatever listens there"
  log "$name: $scenario over $transport port $port"

  tcpdump -i lo -U -s 0 -Z root -w "$pcap" "$transport port $port" 2>"$WORK/$name.tcpdump" &
  TCPDUMP_PID=$!
  wait_for "$WORK/$name.tcpdump" "listening on" "$TCPDUMP_PID" tcpdump

  local framer=socket
  [ "$scenario" = rtu ] && framer=rtu
  [ "$scenario" = ascii ] && framer=ascii
  "$PYTHON" -u "$HERE/modbus_server.py" "$transport" "$port" "$framer" >"$WORK/$name.server" 2>&1 &
  SERVER_PID=$!
  wait_for "$WORK/$name.server" "^READY" "$SERVER_PID" "modbus server"

  rc=0  # run in the background and wait, so that SIGINT/SIGTERM reach the trap at once
  "$PYTHON" -u "$HERE/modbus_client.py" "$scenario" "$port" >"$WORK/$name.client" 2>"$WORK/$name.client.err" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=""
  sleep 0.3                      # let the connection teardown reach lo
  stop_pid "$SERVER_PID" TERM;  SERVER_PID=""
  sleep 0.5                      # tcpdump -U writes each packet; give it time to read the last ones
  stop_pid "$TCPDUMP_PID" INT;  TCPDUMP_PID=""

  if [ "$rc" != 0 ]; then
    cat "$WORK/$name.client" "$WORK/$name.client.err" >&2
    die "$name: client exit status $rc (see the !! lines above)"
  fi
  grep -q "^0 packets dropped by kernel" "$WORK/$name.tcpdump" \
    || { cat "$WORK/$name.tcpdump" >&2; die "$name: tcpdump dropped packets"; }
  verify "$name" "$pcap" "$transport" "$port" "$streams"
  mkdir -p "$OUT"
  mv -f "$pcap" "$OUT/$name.pcap"
  chmod 644 "$OUT/$name.pcap"
  log "$name: $(steps "$name") transactions," \
      "$(tshark -r "$OUT/$name.pcap" 2>/dev/null | wc -l) packets, $(stat -c %s "$OUT/$name.pcap") bytes"
}

steps() { grep -c '^   [A-Z] ' "$WORK/$1.client"; }  # transcript lines of expected outcomes

verify() {  # verify NAME PCAP TRANSPORT PORT STREAMS: the capture holds what the client did
  local name=$1 pcap=$2 transport=$3 port=$4 streams=$5 proto field n_req n_resp n_bad n_streams n_steps
  local -a opts
  if [[ "$name" == *rtu* ]]; then  # Modbus RTU over TCP: Wireshark's mbrtu, by decode-as only
    proto=mbrtu field=tcp.srcport opts=(-d "tcp.port==$port,mbrtu" -o mbrtu.crc_verification:TRUE)
  elif [ "$transport" = udp ]; then
    proto=mbudp field=udp.srcport opts=(-d "udp.port==$port,mbudp")
  else  # the port preference (not just -d) lets Wireshark tell requests from responses
    proto=mbtcp field=tcp.srcport opts=(-o "mbtcp.tcp.port:$port")
  fi
  n_steps=$(steps "$name")
  if [[ "$name" == *ascii* ]]; then  # tshark has no Modbus ASCII dissector: count the frames
    n_req=$(tshark -r "$pcap" -Y "tcp.dstport == $port && tcp.payload[0] == 3a" 2>/dev/null | wc -l)
    n_resp=$(tshark -r "$pcap" -Y "tcp.srcport == $port && tcp.payload[0] == 3a" 2>/dev/null | wc -l)
    [ "$n_req" = "$n_steps" ] || die "$name: $n_req ASCII requests in the capture, client made $n_steps"
    [ "$n_resp" = "$n_steps" ] || die "$name: $n_resp ASCII responses in the capture, client made $n_steps requests"
    n_streams=$(tshark -r "$pcap" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l)
    [ "$n_streams" = "$streams" ] || die "$name: $n_streams TCP connections, expected $streams"
    return 0
  fi
  n_req=$(tshark -r "$pcap" "${opts[@]}" -Y "$proto && modbus && $field != $port" 2>/dev/null | wc -l)
  n_resp=$(tshark -r "$pcap" "${opts[@]}" -Y "$proto && modbus && $field == $port" 2>/dev/null | wc -l)
  n_bad=$(tshark -r "$pcap" "${opts[@]}" \
    -Y "_ws.malformed || _ws.expert.severity >= error || mbtcp.cannot_classify || mbrtu.crc16.status == 0" \
    2>/dev/null | wc -l)
  [ "$n_req" = "$n_steps" ] || die "$name: $n_req Modbus requests in the capture, client made $n_steps"
  [ "$n_resp" = "$n_steps" ] || die "$name: $n_resp Modbus responses in the capture, client made $n_steps requests"
  [ "$n_bad" = 0 ] || die "$name: tshark reports $n_bad malformed/error/unclassified frames"
  if [ "$transport" = tcp ]; then
    n_streams=$(tshark -r "$pcap" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l)
    [ "$n_streams" = "$streams" ] || die "$name: $n_streams TCP connections, expected $streams (foreign traffic on port $port?)"
  fi
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
for name in "${names[@]}"; do
  [ -n "${SPEC[$name]:-}" ] || die "unknown capture '$name' (known: ${ORDER[*]})"
  capture "$name"
done

# One manifest line per capture written by this run.
args=()
for name in "${names[@]}"; do args+=("modbus/$name.pcap" "${CONTENT[$name]}"); done
"$PYTHON" - "$PCAPS/generators" "$GENERATOR" "${args[@]}" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import manifest
pairs = sys.argv[3:]
manifest.update(sys.argv[2], dict(zip(pairs[0::2], pairs[1::2])))
EOF
log "MANIFEST updated for ${#names[@]} capture(s)"
