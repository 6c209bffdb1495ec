// Which metrics a PromQL expression names, and whether a /metrics scrape of the daemon
// exports them. Used on the alert rules and the Grafana dashboard (monitoring.mjs), so that a
// renamed or misspelt metric fails CI instead of leaving an alert that can never fire.

// Series that Prometheus itself makes for every target, not the daemon.
export const PROMETHEUS_SERIES = new Set(["up"]);

const KEYWORDS = new Set([
  "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
  "group_left", "group_right", "inf", "nan", "atan2",
]);

// Metric names in one expression. Strings, label matchers, ranges, Grafana variables and
// label lists (by, on, ...) are cut out first; what remains that is not followed by "(" (a
// function or an aggregation) nor a keyword is a metric name.
export function metricNames(expr) {
  let e = String(expr);
  e = e.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  e = e.replace(/\{[^}]*\}/g, " ");
  e = e.replace(/\[[^\]]*\]/g, " ");
  e = e.replace(/\$\{[^}]*\}|\$\w+/g, " ");
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ");
  const names = new Set();
  for (const m of e.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*/g)) {
    const rest = e.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest)) continue;
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return names;
}

// Grafana's label_values(METRIC_SELECTOR, LABEL) is not PromQL: its first argument is.
export function templatingExpr(query) {
  const text = typeof query === "string" ? query : query?.query ?? "";
  const m = /^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$/s.exec(text);
  if (m) return m[1];
  if (/^\s*label_values\(\s*\w+\s*\)\s*$/.test(text)) return "";  // a label of every series
  return text;
}

// Families (from "# TYPE name type", which the daemon prints even for a family with no
// samples) and the names that have samples.
export function parseScrape(text) {
  const families = new Map();
  const sampled = new Set();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1], type[2]);
    else if (line && !line.startsWith("#")) sampled.add(/^[^{\s]+/.exec(line)[0]);
  }
  return { families, sampled };
}

const SUFFIXES = [
  ["_bucket", ["histogram"]],
  ["_sum", ["histogram", "summary"]],
  ["_count", ["histogram", "summary"]],
];

// The family a name used in an expression belongs to: itself, or a histogram's (summary's)
// family for its _bucket/_sum/_count series; undefined when the scrape has none.
export function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const [suffix, types] of SUFFIXES)
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (types.includes(families.get(base))) return base;
    }
  return undefined;
}

// Problems for each expression's names against a scrape; where says which expression.
export function checkNames(uses, scrape) {
  const problems = [];
  for (const { where, expr } of uses)
    for (const name of metricNames(expr)) {
      if (PROMETHEUS_SERIES.has(name)) continue;
      if (!familyOf(name, scrape.families)) problems.push(`${where}: ${name} is not a metric the daemon exports`);
      else if (!scrape.sampled.has(name)) problems.push(`${where}: ${name} has no samples in the scrape`);
    }
  return problems;
}
