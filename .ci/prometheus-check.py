#!/usr/bin/env python3
"""The generated guardrails against a real Prometheus server.

Starts the example service (examples/axum_service.rs, --serve, 127.0.0.1:3000) and a Prometheus
server on loopback with the generated recording and alerting rules loaded, scraping it every
second; drives mixed traffic (successes, sheds, contract violations, dependency calls) for a
bounded time; then evaluates every dashboard query and every rule expression through the HTTP
API. Each must evaluate without error; those the traffic lights up must return series. Every
recording and alerting rule must be healthy as Prometheus evaluates it. `promtool check metrics`
runs on a scrape and must find nothing.

Usage: prometheus-check.py <example binary> <rules.yml> <dashboard.json>
Bounded: about a minute; every process is stopped and the temporary directory removed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SHOP = "http://127.0.0.1:3000"
PROM_PORT = 9091
PROM = f"http://127.0.0.1:{PROM_PORT}"
TRAFFIC_SECONDS = 25

# Panels whose queries the traffic must light up (by title prefix).
MUST_HAVE_DATA = [
    "Requests per second",
    "Server error ratio",
    "Latency (HTTP)",
    "Breaker state",
    "Adaptive limit and requests in flight",
    "Rejections by reason",
    "Shed requests by class",
    "Contract violations",
    "Requests by version",
    "Server error ratio by version",
    "Dependency attempts per second",
    "Dependency latency per attempt",
    "Dependency breaker state",
    "The reality map",
]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def request(method, path, body=None, content_type=None):
    data = body.encode() if body is not None else None
    req = urllib.request.Request(SHOP + path, data=data, method=method)
    if content_type:
        req.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:
        return 0


def query(expr):
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(get(url))
    except urllib.error.HTTPError as error:
        return json.loads(error.read().decode())


def wait_for(check, what, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def traffic(stop):
    """Mixed traffic until `stop` is set: checkouts (dependency calls), search bursts (sheds,
    dependency calls), valid and invalid orders (contract violations), the map."""
    while not stop.is_set():
        request("POST", "/checkout")
        threads = [
            threading.Thread(target=request, args=("GET", "/search")) for _ in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        request("POST", "/orders", '{"sku":"ABC-123","quantity":2}', "application/json")
        request("POST", "/orders", '{"sku":"abc","quantity":0}', "application/json")
        request("GET", "/steadfast/map")
        time.sleep(0.2)


def main():
    example, rules_path, dashboard_path = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="steadfast-prometheus-")
    processes = []
    try:
        shop = subprocess.Popen(
            [example, "--serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        processes.append(shop)
        # The example runs its script first, then serves.
        lines = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = shop.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving on" in line:
                break
        else:
            raise SystemExit("the example did not start serving")
        if not any("serving on" in line for line in lines):
            raise SystemExit("the example failed:\n" + "".join(lines))
        threading.Thread(target=lambda: shop.stdout.read(), daemon=True).start()

        rules = os.path.join(tmp, "rules.yml")
        shutil.copy(rules_path, rules)
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as out:
            out.write(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                f"rule_files:\n  - {rules}\n"
                "scrape_configs:\n  - job_name: shop\n    static_configs:\n"
                "      - targets: ['127.0.0.1:3000']\n"
            )
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                f"--web.listen-address=127.0.0.1:{PROM_PORT}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "prometheus.log"), "w"),
        )
        processes.append(prometheus)
        wait_for(lambda: get(f"{PROM}/-/ready"), "Prometheus to be ready", 30)

        stop = threading.Event()
        driver = threading.Thread(target=traffic, args=(stop,))
        driver.start()
        time.sleep(TRAFFIC_SECONDS)
        stop.set()
        driver.join()
        time.sleep(3)

        up = query('up{job="shop"}')["data"]["result"]
        if not up or up[0]["value"][1] != "1":
            raise SystemExit(f"Prometheus does not scrape the example: {up}")
        series = query('count({job="shop"})')["data"]["result"][0]["value"][1]

        failures = []
        evaluated = with_data = 0
        dashboard = json.load(open(dashboard_path))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable in ("$route", "$dependency", "$job"):
                    expr = expr.replace(variable, ".*")
                result = query(expr)
                evaluated += 1
                if result.get("status") != "success":
                    failures.append(f"panel {panel['title']!r}: {result.get('error')}: {expr}")
                    continue
                if result["data"]["result"]:
                    with_data += 1
                elif any(panel["title"].startswith(title) for title in MUST_HAVE_DATA):
                    failures.append(f"panel {panel['title']!r} has no data: {expr}")

        groups = json.loads(get(f"{PROM}/api/v1/rules"))["data"]["groups"]
        rules_total = rules_with_data = 0
        for group in groups:
            for rule in group["rules"]:
                rules_total += 1
                if rule.get("health") != "ok":
                    failures.append(
                        f"rule {rule.get('name')} is {rule.get('health')}: {rule.get('lastError')}"
                    )
                result = query(rule["query"])
                evaluated += 1
                if result.get("status") != "success":
                    failures.append(f"rule {rule.get('name')}: {result.get('error')}")
                elif result["data"]["result"]:
                    rules_with_data += 1
        # The route SLO series the dashboard and the alerts stand on.
        for record in [
            "steadfast:route_requests:rate5m",
            "steadfast:route_error_ratio:rate5m",
            "steadfast:route_requests_within:rate5m",
            "steadfast:route_version_requests:rate30m",
            "steadfast:dependency_attempts:rate5m",
        ]:
            if not query(record)["data"]["result"]:
                failures.append(f"{record} has no data")

        scrape = get(f"{SHOP}/metrics")
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True
        )
        findings = [line for line in (checked.stdout + checked.stderr).splitlines() if line]

        print(
            f"Prometheus {PROM}: {series} series scraped from the example; "
            f"{evaluated} queries evaluated ({with_data} dashboard queries and "
            f"{rules_with_data} of {rules_total} rules with data); "
            f"promtool check metrics: {len(findings)} findings"
        )
        for finding in findings:
            failures.append(f"promtool check metrics: {finding}")
        if failures:
            for failure in failures:
                print(f"FAIL {failure}")
            raise SystemExit(1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
