#!/usr/bin/env python3
"""Sends 60-byte UDP frames out of an interface as fast as it takes them for
a number of seconds, then prints "seconds=S" (how long it sent).

    python3 bench/frame_blaster.py --interface TAP --to-mac MAC --to ADDRESS --seconds 5

net_bench.py's far side runs it on its TAP for the guest's small frames in:
a process, not the kernel's pktgen, so that on a one-CPU emulated machine
it is preempted like any other and cannot starve the VMM it measures.
Frames the interface drops (its queue full) count for nothing; the
receiver counts what arrived. Root (a packet socket).
"""
import argparse
import errno
import socket
import struct
import sys
import time

FRAME_BYTES = 60
ETHERTYPE_IPV4 = 0x0800
DISCARD_PORT = 9


def checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(to_mac: bytes, from_mac: bytes, source: str, destination: str) -> bytes:
    """Ethernet + IPv4 + UDP to the discard port, padded to FRAME_BYTES."""
    payload = bytes(FRAME_BYTES - 14 - 20 - 8)
    udp = struct.pack("!HHHH", DISCARD_PORT, DISCARD_PORT, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return to_mac + from_mac + struct.pack("!H", ETHERTYPE_IPV4) + ip + udp


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"{text}: not a MAC address (six hex bytes with colons)")
    return bytes(int(part, 16) for part in parts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interface", required=True)
    parser.add_argument("--to-mac", type=mac_bytes, required=True)
    parser.add_argument("--to", required=True, help="destination IPv4 address")
    parser.add_argument("--from", dest="source", default="0.0.0.0", help="source IPv4 address")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sender:
        sender.bind((args.interface, 0))
        frame = udp_frame(args.to_mac, sender.getsockname()[4], args.source, args.to)
        start = time.monotonic()
        end = start + args.seconds
        while time.monotonic() < end:
            for _ in range(64):
                try:
                    sender.send(frame)
                except OSError as error:
                    if error.errno != errno.ENOBUFS:  # the queue is full: the frame is dropped
                        raise
        print(f"seconds={time.monotonic() - start:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
