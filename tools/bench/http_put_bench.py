#!/usr/bin/env python3
"""Durable-put latency and throughput, the same client against craftkv and etcd.

Both servers get the same workload from the same Python HTTP/1.1 client (one
keep-alive connection per client thread): unique keys, 256-byte values.

  craftkv: PUT /kv/{key}              (body = value)
  etcd:    POST /v3/kv/put            (JSON gateway, base64 key and value)

Prints one line per (server, clients): puts/s, p50, p99 in ms. Used by
scripts/bench_compare.sh; not a test.

  python3 tools/bench/http_put_bench.py --kind craftkv --endpoint 127.0.0.1:7380 \\
      --clients 1,16,64 --seconds 5
"""
import argparse
import base64
import http.client
import json
import threading
import time


def worker(kind, host, port, deadline, value, tag, out):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    lat = []
    n = 0
    errors = 0
    while time.monotonic() < deadline:
        key = f"bench-{tag}-{n}"
        t0 = time.monotonic()
        try:
            if kind == "craftkv":
                conn.request("PUT", "/kv/" + key, body=value)
            else:
                body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                                   "value": base64.b64encode(value).decode()})
                conn.request("POST", "/v3/kv/put", body=body,
                             headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status in (200, 204)
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        if ok:
            lat.append(time.monotonic() - t0)
        else:
            errors += 1
        n += 1
    conn.close()
    out.append((lat, errors))


def run(kind, endpoint, clients, seconds):
    host, port = endpoint.rsplit(":", 1)
    value = b"v" * 256
    out = []
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=worker,
                                args=(kind, host, int(port), deadline, value, f"{clients}-{i}", out))
               for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    lat = sorted(x for l, _ in out for x in l)
    errors = sum(e for _, e in out)
    if not lat:
        return 0.0, 0.0, 0.0, errors
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return len(lat) / elapsed, p(0.50), p(0.99), errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["craftkv", "etcd"], required=True)
    ap.add_argument("--endpoint", required=True, help="host:port of the HTTP API")
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    for c in [int(x) for x in args.clients.split(",")]:
        rate, p50, p99, errors = run(args.kind, args.endpoint, c, args.seconds)
        print(f"| {args.kind} | {c} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
