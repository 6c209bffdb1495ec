// The metric-name check finds what it claims to: names in every PromQL position, never a
// label, function, keyword or Grafana variable, and a histogram's series only as such.
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkNames, familyOf, metricNames, parseScrape, templatingExpr } from "./promql.mjs";

const names = (e) => [...metricNames(e)].sort();

test("names in selectors, functions, aggregations and binary operations", () => {
  assert.deepEqual(
    names('sum by (le, source) (rate(a_bucket{namespace="$namespace", pod=~"$pod"}[$__rate_interval]))'),
    ["a_bucket"],
  );
  assert.deepEqual(names('histogram_quantile(0.99, sum(rate(x_bucket[5m])) by (le))'), ["x_bucket"]);
  assert.deepEqual(
    names('max by (namespace, pod) (b) == 3 and on (namespace, pod) max by (namespace, pod) (c) < 3600'),
    ["b", "c"],
  );
  assert.deepEqual(names('sum(rate(d{outcome=~"failed|x{y}"}[5m])) / ignoring(outcome) group_left sum(e) > 1e3'), ["d", "e"]);
  assert.deepEqual(names("up{job=\"mdagg\"} == 0"), ["up"]);
  assert.deepEqual(names('count_values("version", f) offset 1h'), ["f"]);
});

test("label_values queries of Grafana", () => {
  assert.equal(templatingExpr({ query: 'label_values(g{namespace="$namespace"}, pod)' }), 'g{namespace="$namespace"}');
  assert.equal(templatingExpr("label_values(namespace)"), "");
  assert.equal(templatingExpr("h"), "h");
});

const scrape = parseScrape(`# HELP m_total A counter.
# TYPE m_total counter
m_total{source="a"} 3
# HELP lat_seconds A histogram.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="+Inf"} 1
lat_seconds_sum 0.5
lat_seconds_count 1
# HELP empty A family with no samples.
# TYPE empty gauge
# HELP g A gauge.
# TYPE g gauge
g 1
`);

test("a histogram's _bucket, _sum and _count belong to it; a gauge's do not", () => {
  assert.equal(familyOf("lat_seconds_bucket", scrape.families), "lat_seconds");
  assert.equal(familyOf("lat_seconds_count", scrape.families), "lat_seconds");
  assert.equal(familyOf("g_bucket", scrape.families), undefined);
  assert.equal(familyOf("m_total", scrape.families), "m_total");
});

test("unknown names, families without samples and misused suffixes are reported", () => {
  const uses = [
    { where: "ok", expr: "rate(m_total[5m]) + g + lat_seconds_sum / lat_seconds_count" },
    { where: "typo", expr: "rate(m_totl[5m])" },
    { where: "no samples", expr: "empty" },
    { where: "suffix", expr: "g_count" },
    { where: "prometheus", expr: "up == 0" },
  ];
  assert.deepEqual(checkNames(uses, scrape), [
    "typo: m_totl is not a metric the daemon exports",
    "no samples: empty has no samples in the scrape",
    "suffix: g_count is not a metric the daemon exports",
  ]);
});
