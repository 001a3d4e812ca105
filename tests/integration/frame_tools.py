"""Run inside a network namespace (ip netns exec NS python3 frame_tools.py ...)
by the guest-kit network tests: the far end of a vNIC's TAP.

    frame_tools.py ping ADDRESS COUNT
        ICMP echo requests, one at a time; prints "replies N" (those that came
        back with the payload intact).
    frame_tools.py request ADDRESS PORT
        one UDP datagram to ADDRESS:PORT (the endpoint's request).
    frame_tools.py capture INTERFACE PORT COUNT SECONDS
        after printing "capturing", reads frames from INTERFACE (a packet
        socket) until COUNT UDP frames from PORT came or SECONDS passed; prints
        "frames N in_order N" (in order: the 8-byte sequence numbers of their
        payloads are 0, 1, 2 ... as they came).
"""
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def internet_checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(address, count):
    payload = b"vireo ping " * 4
    replies = 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(2)
        for sequence in range(count):
            header = struct.pack("!BBHHH", 8, 0, 0, 0x7669, sequence)
            header = struct.pack("!BBHHH", 8, 0, internet_checksum(header + payload), 0x7669, sequence)
            sock.sendto(header + payload, (address, 0))
            try:
                while True:
                    packet = sock.recv(2048)
                    icmp = packet[(packet[0] & 0xF) * 4:]
                    if (icmp[0] == 0 and struct.unpack("!H", icmp[6:8])[0] == sequence
                            and icmp[8:] == payload and internet_checksum(icmp) == 0):
                        replies += 1
                        break
            except socket.timeout:
                pass
    print(f"replies {replies}")


def request(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"send", (address, port))


def capture(interface, port, count, seconds):
    frames = in_order = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: no drops in a burst
        sock.bind((interface, 0))
        sock.settimeout(0.5)
        print("capturing", flush=True)
        deadline = time.monotonic() + seconds
        while frames < count and time.monotonic() < deadline:
            try:
                frame, address = sock.recvfrom(65536)
            except socket.timeout:
                continue
            if address[2] == socket.PACKET_OUTGOING or len(frame) < 14 + 20 + 8 + 8:
                continue
            ip = frame[14:]
            udp = ip[(ip[0] & 0xF) * 4:]
            if frame[12:14] != b"\x08\x00" or ip[9] != 17 or struct.unpack("!H", udp[:2])[0] != port:
                continue
            if struct.unpack("!Q", udp[8:16])[0] == frames:
                in_order += 1
            frames += 1
    print(f"frames {frames} in_order {in_order}")


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    if command == "ping":
        ping(arguments[0], int(arguments[1]))
    elif command == "request":
        request(arguments[0], int(arguments[1]))
    elif command == "capture":
        capture(arguments[0], int(arguments[1]), int(arguments[2]), float(arguments[3]))
    else:
        sys.exit(f"unknown command {command}")
