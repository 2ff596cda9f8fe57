"""Benchmark of ccl-images: image pairs per second, MB/s, p50/p99 latency and the server's peak RSS
at concurrency 1, 8 and 32.

Starts its own PostgreSQL cluster (fsync on) and the service as a subprocess (`python -m twisted
ccl-images`), uploads pairs of the real strip images from ../shared/samples/strip-images/ when
present (read in place, never copied), otherwise Pillow-made JPEGs of the same size.

    CCL_VENV=/work/venv-x $CCL_VENV/bin/python bench/ingest_images.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import io
import sys
import uuid

from _service import ROOT, Bench, percentile, run_clients

TARGET = "target at concurrency 8: >= 100 pairs/s, p99 < 250 ms, peak RSS < 200 MB"


def sample_images() -> tuple[list[bytes], str]:
    folder = ROOT.parent / "shared" / "samples" / "strip-images"
    files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if len(files) >= 2:
        return [f.read_bytes() for f in files], f"{len(files)} sample images from {folder}"
    from PIL import Image

    images = []
    for seed in range(6):
        image = Image.effect_noise((1228, 1000), 20 + seed).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images, "6 generated 1228x1000 JPEGs (no sample folder found)"


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for name, filename, data in fields:
        extra = f'; filename="{filename}"' if filename else ""
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def drain_thumbnails(port: int, limit: float = 120.0) -> float:
    """Seconds until the background thumbnail queue is empty (it trails the uploads)."""
    import http.client
    import time

    from ccl.domain.metrics import parse_text

    started = time.monotonic()
    while time.monotonic() - started < limit:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        samples = parse_text(connection.getresponse().read().decode())
        backlog = [value for name, _, value in samples if name == "ccl_ingest_thumbnail_backlog"]
        if backlog and backlog[0] == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per concurrency level")
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()

    images, source = sample_images()
    bodies = []
    for i in range(len(images)):
        original, labeled = images[i], images[(i + 1) % len(images)]
        defects = b'[{"defect_type": "scratch", "confidence_score": 0.91, "defect_position_meter": 12.5}]'
        body, content_type = multipart([("coil_number", None, f"BENCH-{i}".encode()), ("defect_data", None, defects),
                                        ("original_image", "o.jpg", original), ("labeled_image", "l.jpg", labeled)])
        bodies.append((body, content_type, len(original) + len(labeled)))
    mean_pair = sum(b[2] for b in bodies) / len(bodies)
    print(f"ccl-images benchmark: {source}; mean pair {mean_pair / 1e6:.2f} MB")

    bench = Bench("ccl-images", env={"CCL_IMAGES_RETENTION_INTERVAL": "3600"})
    try:
        print(f"server RSS after start: {bench.rss_now() / 2**20:.0f} MB")
        print(f"{'conc':>4} {'pairs/s':>8} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'peak RSS MB':>11} {'errors':>6} {'CPU ms/req':>9} {'PG ms/req':>9} {'client ms':>9}")
        for level in [int(x) for x in args.levels.split(",")]:
            bench.reset_peak()
            before = bench.cpu_snapshot()

            def request(i):
                body, content_type, _ = bodies[i % len(bodies)]
                return "POST", "/upload/pair", body, {"Content-Type": content_type}

            latencies, failures, seconds = run_clients(bench.port, level, request, args.seconds)
            rate = len(latencies) / seconds
            cpu, pg_cpu, client_cpu = bench.cpu_per_request(before, len(latencies))
            print(f"{level:>4} {rate:>8.1f} {rate * mean_pair / 1e6:>7.1f} {percentile(latencies, 50) * 1000:>7.1f}"
                  f" {percentile(latencies, 99) * 1000:>7.1f} {bench.peak_rss / 2**20:>11.0f} {len(failures):>6}"
                  f" {cpu * 1000:>9.1f} {pg_cpu * 1000:>9.1f} {client_cpu * 1000:>9.1f}")
            if failures:
                print(f"     first failures: {failures[:3]}")
            waited = drain_thumbnails(bench.port)
            # The thumbnails trail the uploads: their CPU is only all counted once they caught up.
            with_thumbnails = bench.cpu_per_request(before, len(latencies))[0]
            print(f"     thumbnails caught up {waited:.1f} s after the last upload;"
                  f" CPU per pair with its thumbnails {with_thumbnails * 1000:.1f} ms")
        print(TARGET)
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
