"""ccl tls init: a private CA for a site and a server certificate for its hosts.

    ccl tls init --site DIR --hosts plant1.local,10.20.0.5 [--name server] [--days N]

The CA (``ca.pem``, ``ca.key``) is made once and kept; each run signs a new ``<name>.pem`` /
``<name>.key`` for the hosts given (DNS names and IP addresses; 127.0.0.1 and localhost are
always added, because our own clients on the machine reach the listeners there). Keys are
0600. Prints the settings for the INI file. docs/operations.md, "TLS".
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ccl.adapters.certificates import CA_CERT, CertificateError, endpoint_string, issue_server_certificate, make_ca

LOCAL_NAMES = ("127.0.0.1", "localhost")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["init"])
    parser.add_argument("--site", type=Path, required=True, help="directory for the CA and the certificates")
    parser.add_argument("--hosts", required=True,
                        help="comma-separated names and addresses the servers are reached by (SANs)")
    parser.add_argument("--name", default="server", help="file name of the certificate (default server)")
    parser.add_argument("--days", type=int, default=825, help="validity of the server certificate (default 825)")


def run(args: argparse.Namespace) -> int:
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    hosts += [name for name in LOCAL_NAMES if name not in hosts]
    now = datetime.datetime.now(datetime.timezone.utc)
    site = args.site.absolute()
    try:
        ca = make_ca(site, now=now)
        issued = issue_server_certificate(site, args.name, hosts, now=now, days=args.days)
    except (CertificateError, OSError, ValueError) as error:
        sys.stderr.write(f"ccl tls init: {error}\n")
        return 1
    print(f"CA:          {ca}   (give this file to every client: Jetson boxes, browsers, scripts)")
    print(f"certificate: {issued.cert} for {', '.join(issued.names)}")
    print(f"key:         {issued.key} (mode 600)")
    print()
    print("# Settings for the INI file (CCL_CONFIG); keep only the listeners you want on TLS.")
    print("[tls]")
    print(f"ca_file = {site / CA_CERT}")
    for section, port, interface in (("images", 8081, None), ("defects", 8082, None), ("ui", 3000, None),
                                     ("orchestrator", 9000, "127.0.0.1")):
        print(f"[{section}]")
        print(f"listen = {endpoint_string(port, issued, interface)}")
    print("[database]")
    print("sslmode = verify-full")
    print(f"local_ssl_cert = {issued.cert}")
    print(f"local_ssl_key = {issued.key}")
    return 0
