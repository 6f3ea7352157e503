"""Load and fuzz benchmark of lprnet-serve on loopback (bounded in time; nothing leaves 127.0.0.1).

  python benchmarks/serving_load.py [--model cn_lprnet_basic] [--levels 1,4,16] [--seconds 60]
                                    [--fuzz_seconds 60] [--out benchmarks/results/serving_load.md]

1. Exports ``--model`` (a shipped name, run directory or .keras file) to a temporary SavedModel
   with the project's export routine (or serves ``--saved_model DIR`` as is) and starts
   ``python -m lprnet_tf.cli.serve`` on 127.0.0.1 in a subprocess.
2. Load: for each concurrency level, that many client threads, each on its own keep-alive
   connection, POST one rendered synthetic plate JPEG per request for ``--seconds``; latency
   p50/p90/p99 of the 200 answers, requests/s, answers per status class, server RSS at the start
   and end of the level.
3. Fuzz: ``--fuzz_seconds`` of malformed requests from :mod:`lprnet_tf.serving.stress` (bad JSON,
   wrong types, bad base64, non-images, truncated/corrupt/huge-header images, oversized bodies and
   batches, lying/missing Content-Length, stalled bodies, wrong methods/URLs, broken request lines
   and headers, random bytes) from ``--fuzz_concurrency`` threads, with a valid control request
   every 10th; counts per case and status class; server RSS start/end/peak; then a status check.
4. Writes a markdown report (tables, machine, date, command) and exits 1 if any answer was 5xx,
   any request hung, a control request failed, or the server died.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lprnet_tf.serving.stress import (CLASSES, FUZZ_CASES, FuzzContext, free_port, plate_jpegs,  # noqa: E402
                                      run_fuzz, run_load, server_alive, server_rss_mb)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cn_lprnet_basic",
                   help="Model to serve: shipped name, run directory or .keras file (exported to a temp SavedModel).")
    p.add_argument("--saved_model", default="",
                   help="Serve this exported SavedModel base folder (DIR/NAME) instead of exporting --model.")
    p.add_argument("--levels", default="1,4,16", help="Comma-separated client concurrency levels for the load phase.")
    p.add_argument("--seconds", type=float, default=60.0, help="Seconds of load per concurrency level.")
    p.add_argument("--batch", type=int, default=1, help="Plates per predict request in the load phase.")
    p.add_argument("--fuzz_seconds", type=float, default=60.0, help="Seconds of fuzzing (0 skips the phase).")
    p.add_argument("--fuzz_concurrency", type=int, default=4, help="Client threads in the fuzz phase.")
    p.add_argument("--read_timeout", type=float, default=5.0,
                   help="Server --read_timeout in seconds (bounds the stalled-body fuzz cases).")
    p.add_argument("--max_batch", type=int, default=64, help="Server --max_batch.")
    p.add_argument("--max_body_mb", type=float, default=8.0, help="Server --max_body_mb.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the fuzz parameters and the rendered plates.")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "serving_load.md"),
                   help="Markdown report to write.")
    args = p.parse_args(argv)
    try:
        args.level_list = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        p.error(f"--levels must be comma-separated integers, got {args.levels!r}")
    if not args.level_list or min(args.level_list) < 1:
        p.error("--levels needs at least one level >= 1")
    if args.seconds <= 0 or args.fuzz_seconds < 0 or args.batch < 1 or args.fuzz_concurrency < 1:
        p.error("--seconds must be > 0, --fuzz_seconds >= 0, --batch and --fuzz_concurrency >= 1")
    return args


def export_model(spec: str, out_dir: str):
    from lprnet_tf.export import export_savedmodel
    from lprnet_tf.modelio import load_for_inference

    model, fmt, path = load_for_inference(spec)
    export_savedmodel(model, fmt, out_dir, name="lpr", version=1)
    return os.path.join(out_dir, "lpr"), fmt, path


def start_server(base: str, port: int, args, log_path: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lprnet_tf.cli.serve", "--model", base, "--host", "127.0.0.1", "--port", str(port),
           "--name", "lpr", "--read_timeout", str(args.read_timeout), "--max_batch", str(args.max_batch),
           "--max_body_mb", str(args.max_body_mb)]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            log.close()
            raise SystemExit(f"the server exited with {proc.returncode} while starting:\n"
                             + open(log_path, errors="replace").read()[-3000:])
        if server_alive("127.0.0.1", port, "lpr", timeout=5):
            return proc
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not answer within 300 s")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average at start {os.getloadavg()[0]:.2f}"
    import tensorflow as tf

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}){load}; Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}")


def _mb(v):
    return "-" if v is None else f"{v:.0f}"


def _quartiles(samples):
    if not samples:
        return "-"
    return "/".join(_mb(samples[min(len(samples) - 1, max(0, round(q * len(samples)) - 1))]) for q in (.25, .5, .75, 1))


def flat(start, end) -> bool | None:
    if start is None or end is None:
        return None
    return end - start <= max(32.0, 0.10 * start)


def write_report(path, args, info, loads, fuzz, alive, verdict):
    cmd = "python benchmarks/serving_load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    L = ["# lprnet-serve under load and fuzz (loopback)", "",
         f"`{cmd.strip()}`, {datetime.date.today().isoformat()}. Machine: {info['machine']}. "
         f"Client and server share this machine's cores.", "",
         f"Model: {info['model']} served by `python -m lprnet_tf.cli.serve` (127.0.0.1, threaded, inference "
         f"serialised by one lock) with --max_batch {args.max_batch} --max_body_mb {args.max_body_mb:g} "
         f"--read_timeout {args.read_timeout:g}. Requests: one rendered synthetic plate JPEG each "
         f"(batch {args.batch}), row format (`{{\"instances\": [{{\"b64\": ...}}]}}`), keep-alive connections. "
         f"Server RSS {_mb(info['rss_before_warmup'])} MiB after start, {_mb(info['rss_after_warmup'])} MiB after an "
         f"untimed warm-up (2 s of single requests, then {4 * args.fuzz_concurrency} batches at and over --max_batch, "
         f"which size the working set once); each phase's growth is measured from there.", "",
         "## Load", "",
         "| clients | seconds | requests | req/s | plates/s | p50 ms | p90 ms | p99 ms | 2xx | 4xx | 5xx | "
         "conn. errors | timeouts | server RSS start MiB | end MiB |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in loads:
        L.append(f"| {r['concurrency']} | {r['seconds']:.1f} | {r['requests']} | {r['requests_per_s']:.1f} | "
                 f"{r['plates_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['2xx']} | "
                 f"{r['4xx']} | {r['5xx']} | {r['error']} | {r['timeout']} | {_mb(r['rss_start_mb'])} | "
                 f"{_mb(r['rss_end_mb'])} |")
    errs = [e for r in loads for e in r["error_examples"]]
    if errs:
        L += ["", "Connection errors seen by the load clients (first few): " + "; ".join(f"`{e}`" for e in errs[:5])]
    if fuzz is not None:
        t, rss = fuzz["totals"], fuzz["rss_mb"]
        L += ["", "## Fuzz", "",
              f"{fuzz['requests']} requests in {fuzz['seconds']:.1f} s from {args.fuzz_concurrency} clients, "
              f"round-robin over {len(FUZZ_CASES)} cases (seeded random parameters, `lprnet_tf/serving/stress.py`), "
              f"a valid control request every 10th. `no status`: the server closed the connection without a status line "
              f"(a request line it could not parse, or an HTTP/0.9 request); `timeout`: no answer within "
              f"read_timeout + 15 s (a hang).", "",
              "**Totals**: " + ", ".join(f"{c} {t[c]}" for c in CLASSES) +
              f". Control requests failed: {len(fuzz['control_failures'])}. "
              f"Server RSS start {_mb(rss['start'])} MiB, end {_mb(rss['end'])} MiB, peak {_mb(rss['peak'])} MiB "
              f"(at 25/50/75/100% of the phase: {_quartiles(rss['samples'])} MiB). "
              f"Server alive and answering after the fuzz: **{'yes' if alive else 'NO'}**.", "",
              "| case | requests | 2xx | 4xx | 5xx | no status | timeouts | errors |",
              "|---|---|---|---|---|---|---|---|"]
        for name, c in fuzz["per_case"].items():
            L.append(f"| {name} | {sum(c.values())} | {c['2xx']} | {c['4xx']} | {c['5xx']} | {c['no_status']} | "
                     f"{c['timeout']} | {c['error']} |")
        if fuzz["examples"]:
            L += ["", "5xx / hang examples:", ""] + [f"- `{e['case']}` {e['class']} {e['status']}: "
                                                     f"`{e['body'][:120]}`" for e in fuzz["examples"][:10]]
    L += ["", "## Verdict", ""] + [f"- {v}" for v in verdict] + [""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L))


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="serving_load_")
    info = {"machine": machine()}
    if args.saved_model:
        base = args.saved_model
        info["model"] = f"SavedModel {os.path.basename(os.path.normpath(base))}"
        from lprnet_tf.export import FORMAT_FILE
        from lprnet_tf.serving.server import resolve_version_dir
        from lprnet_tf.vocab import load_plate_format

        fmt = load_plate_format(os.path.join(resolve_version_dir(base)[0], "assets", FORMAT_FILE))
    else:
        print(f"exporting {args.model} to a temporary SavedModel ...", flush=True)
        base, fmt, path = export_model(args.model, tmp)
        info["model"] = f"`{args.model}` (exported to a temporary SavedModel)"
    port = free_port()
    log_path = os.path.join(tmp, "server.log")
    proc = start_server(base, port, args, log_path)
    pid = proc.pid
    jpegs = [j for j, _ in plate_jpegs(fmt, 16, seed=args.seed + 2024)]
    loads, fuzz, alive = [], None, False
    ctx = FuzzContext("lpr", jpegs, int(args.max_body_mb * (1 << 20)), args.max_batch, (fmt.height, fmt.width))
    try:
        # warm-up, not timed: the largest legal requests (batches at --max_batch) grow the server's
        # working set once (TF/oneDNN buffers, per-thread malloc arenas); "flat" is judged after that
        info["rss_before_warmup"] = server_rss_mb(pid)
        run_load("127.0.0.1", port, "lpr", jpegs, 1, 2.0, batch=args.batch)
        run_fuzz("127.0.0.1", port, ctx, count=4 * args.fuzz_concurrency, concurrency=args.fuzz_concurrency,
                 control_every=0, read_timeout_s=args.read_timeout,
                 cases={k: FUZZ_CASES[k] for k in ("batch_at_limit", "batch_too_big")})
        info["rss_after_warmup"] = server_rss_mb(pid)
        for c in args.level_list:
            print(f"load: {c} client(s) for {args.seconds:g} s ...", flush=True)
            r = run_load("127.0.0.1", port, "lpr", jpegs, c, args.seconds, batch=args.batch, rss_pid=pid)
            loads.append(r)
            print(f"  {r['requests_per_s']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"2xx {r['2xx']} 4xx {r['4xx']} 5xx {r['5xx']} errors {r['error']}, RSS {_mb(r['rss_start_mb'])}"
                  f" -> {_mb(r['rss_end_mb'])} MiB", flush=True)
        if args.fuzz_seconds > 0:
            print(f"fuzz: {args.fuzz_seconds:g} s, {args.fuzz_concurrency} clients ...", flush=True)
            fuzz = run_fuzz("127.0.0.1", port, ctx, seconds=args.fuzz_seconds, concurrency=args.fuzz_concurrency,
                            seed=args.seed, read_timeout_s=args.read_timeout, rss_pid=pid)
            print(f"  {fuzz['requests']} requests: {fuzz['totals']}", flush=True)
        alive = proc.poll() is None and server_alive("127.0.0.1", port, "lpr")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    n5 = sum(r["5xx"] for r in loads) + (fuzz["totals"]["5xx"] if fuzz else 0)
    hangs = sum(r["timeout"] for r in loads) + (fuzz["totals"]["timeout"] if fuzz else 0)
    bad = sum(r["bad_answers"] for r in loads) + (len(fuzz["control_failures"]) if fuzz else 0)
    phases = [(f"load x{r['concurrency']}", r["rss_start_mb"], r["rss_end_mb"]) for r in loads]
    if fuzz:
        phases.append(("fuzz", fuzz["rss_mb"]["start"], fuzz["rss_mb"]["end"]))
    growth = [f"{n} {(e - s):+.0f}" for n, s, e in phases if s is not None and e is not None]
    flat_ok = all(flat(s, e) is not False for _, s, e in phases)
    verdict = [f"5xx answers: {n5}", f"hung requests (timeouts): {hangs}",
               f"wrong 200 answers / failed control requests: {bad}",
               f"server alive at the end: {'yes' if alive else 'NO'}",
               f"memory flat (each phase grows by at most max(32 MiB, 10%)): {'yes' if flat_ok else 'NO'} "
               f"(RSS change per phase, MiB: {', '.join(growth) or 'n/a'})"]
    write_report(args.out, args, info, loads, fuzz, alive, verdict)
    print("\n".join(verdict))
    print(f"wrote {args.out}")
    ok = n5 == 0 and hangs == 0 and bad == 0 and alive
    if not ok:
        print(f"FAILED; server log and export kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
