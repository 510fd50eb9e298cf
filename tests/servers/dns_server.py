"""A DNS server on loopback for the host-route tests: answers A queries from a JSON file
({"name.": ["127.0.0.1", ...]}) read again on every query, so a test changes an answer by
rewriting the file. TTL 1. Prints "port N" once it serves (UDP and TCP on the same port)."""

import json
import sys
import time

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class FileResolver(BaseResolver):
    def __init__(self, path):
        self.path = path

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        try:
            with open(self.path) as f:
                answers = json.load(f)
        except (OSError, ValueError):
            answers = {}
        if request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in answers.get(name, []):
                reply.add_answer(RR(name, QTYPE.A, rdata=A(ip), ttl=1))
        return reply


def main():
    path = sys.argv[1]
    resolver = FileResolver(path)
    # Quiet: stdout carries only the port line (the test stops reading after it).
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    # UDP on a free port, then TCP on the same one; another process may hold that TCP port
    # already (ephemeral ports are shared by every test running), so try again.
    for _ in range(50):
        udp = DNSServer(resolver, port=0, address="127.0.0.1", logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=quiet)
            break
        except OSError:
            udp.server.server_close()
    else:
        sys.exit("no port free for both UDP and TCP")
    udp.start_thread()
    tcp.start_thread()
    print(f"port {port}", flush=True)
    # Ends with the test (its stdin closes) or after an hour at most.
    deadline = time.time() + 3600
    while time.time() < deadline and sys.stdin.read(1):
        pass
    udp.stop()
    tcp.stop()


if __name__ == "__main__":
    main()
