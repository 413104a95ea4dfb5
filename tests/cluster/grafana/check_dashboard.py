"""Checks a Grafana dashboard against a node's real /metrics: the JSON parses, every datasource
is the provisioned uid (duet-prometheus), every PromQL expression parses, and every metric it
selects is in the exposition (or is Prometheus's own `up`). Run it after renaming a metric:

    python3 -m venv /tmp/promql && /tmp/promql/bin/pip install promql-parser
    DUET_BIND=127.0.0.1:18554 DUET_METRICS_BIND=127.0.0.1:18555 DUET_DATA_DIR=/tmp/duet-metrics ./target/debug/duet &
    /tmp/promql/bin/python tests/cluster/grafana/check_dashboard.py \
        tests/cluster/grafana/dashboards/duet.json http://127.0.0.1:18555/metrics

The second argument is a URL or a file holding the exposition. Exits 1 on any error."""
import json, re, sys, urllib.request
import promql_parser as pp

dash_path, source = sys.argv[1], sys.argv[2]
dash = json.load(open(dash_path))
if source.startswith(("http://", "https://")):
    exposition = urllib.request.urlopen(source, timeout=10).read().decode()
else:
    exposition = open(source).read()
exposed = set()
for line in exposition.splitlines():
    if line.strip() and not line.startswith("#"):
        exposed.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
SYNTHETIC = {"up"}  # written by Prometheus for each scrape, not by the node

def ds_uids(obj):
    if isinstance(obj, dict):
        if "datasource" in obj and isinstance(obj["datasource"], dict):
            yield obj["datasource"].get("uid")
        for v in obj.values():
            yield from ds_uids(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from ds_uids(v)

def names(e):
    out = []
    def visit(n):
        if isinstance(n, pp.VectorSelector):
            out.append(n.name)
        elif isinstance(n, pp.MatrixSelector):
            visit(n.vector_selector)
        elif isinstance(n, pp.Call):
            for a in n.args: visit(a)
        elif isinstance(n, pp.AggregateExpr):
            visit(n.expr)
            if n.param is not None: visit(n.param)
        elif isinstance(n, pp.BinaryExpr):
            visit(n.lhs); visit(n.rhs)
        elif isinstance(n, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
            visit(n.expr)
    visit(e)
    return out

def grafana_subst(expr):
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
                .replace("$instance", ".*"))

errors, exprs = [], []
for p in dash["panels"]:
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
for v in dash["templating"]["list"]:
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
    exprs.append((f"variable {v['name']}", m.group(1) if m else q))

used = set()
for where, expr in exprs:
    try:
        tree = pp.parse(grafana_subst(expr))
    except Exception as err:
        errors.append(f"{where}: does not parse: {err}: {expr}")
        continue
    ns = names(tree)
    if not ns:
        errors.append(f"{where}: selects no metric: {expr}")
    for n in ns:
        used.add(n)
        if n not in exposed and n not in SYNTHETIC:
            errors.append(f"{where}: {n} is not in /metrics")

uids = set(ds_uids(dash))
if uids != {"duet-prometheus", "-- Grafana --"}:
    errors.append(f"datasource uids: {uids}")
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    errors.append("panel ids repeat")

print(f"{len(exprs)} expressions, {len(dash['panels'])} panels; metrics used: {sorted(used)}")
print(f"exposed but unused: {sorted(exposed - used)}")
for e in errors: print("ERROR", e)
sys.exit(1 if errors else 0)
