"""Parse an OpenMetrics exposition (stdin) with the Prometheus project's
Python client parser, which checks the format strictly (types, suffixes,
histogram buckets, the final `# EOF`), and print its samples as JSON lines:
{"name": ..., "labels": {...}, "value": ...}. Exit 1 with the parser's
message if it does not parse. Used by metrics.test.mjs."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and others
    print(f"not OpenMetrics: {e}", file=sys.stderr)
    sys.exit(1)
for f in families:
    for s in f.samples:
        print(json.dumps({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value}))
