// The checks catch what they claim to: each case breaks one rule in a real render.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { checkMonitoring, checkSchemas, checkWorkloads, deployDir, parseDuration, render, tokenEnvOf } from "./checks.mjs";
import { dashboardProblems, promtool, ruleGroups } from "./monitoring.mjs";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

const sharded = () => render(join(deployDir, "overlays", "sharded"));
const sts = (objects) => objects.find((o) => o.kind === "StatefulSet");
const container = (objects) => sts(objects).spec.template.spec.containers[0];
const configMap = (objects) => objects.find((o) => o.kind === "ConfigMap");

function expectProblem(mutate, pattern) {
  const objects = sharded();
  assert.deepEqual(checkWorkloads(objects), [], "the unmodified render passes");
  mutate(objects);
  const problems = checkWorkloads(objects);
  assert.ok(problems.some((p) => pattern.test(p)), `expected ${pattern}, got ${JSON.stringify(problems)}`);
}

test("the renders pass the schemas and the rules", async () => {
  for (const dir of [join(deployDir, "base"), join(deployDir, "overlays", "sharded")]) {
    const objects = render(dir);
    assert.deepEqual(await checkSchemas(objects), []);
    assert.deepEqual(checkWorkloads(objects), []);
  }
});

const kafka = () => render(join(deployDir, "overlays", "kafka"));

test("the kafka overlay passes the schemas and the rules, with its secret and CA from the pod's Secrets", async () => {
  const objects = kafka();
  assert.deepEqual(await checkSchemas(objects), []);
  assert.deepEqual(checkWorkloads(objects), []);
  const config = parseYaml(configMap(objects).data["mdagg.yaml"]);
  assert.match(config.kafka.brokers, /-kafka-bootstrap\.[a-z-]+\.svc\.cluster\.local:9093$/, "Strimzi's bootstrap Service");
  assert.deepEqual(config.kafka.properties["sasl.password"], { env: "KAFKA_PASSWORD" });
});

test("the kafka sink's secrets and files must reach the pod", () => {
  const password = (o) => container(o).env.find((e) => e.name === "KAFKA_PASSWORD");
  const expectKafkaProblem = (mutate, pattern) => {
    const objects = kafka();
    mutate(objects);
    const problems = checkWorkloads(objects);
    assert.ok(problems.some((p) => pattern.test(p)), `expected ${pattern}, got ${JSON.stringify(problems)}`);
  };
  expectKafkaProblem((o) => {
    container(o).env = container(o).env.filter((e) => e.name !== "KAFKA_PASSWORD");
  }, /kafka.properties.sasl.password: KAFKA_PASSWORD is not set in the container/);
  expectKafkaProblem((o) => (password(o).valueFrom.secretKeyRef.optional = true), /Secret mdagg of KAFKA_PASSWORD is optional/);
  expectKafkaProblem((o) => Object.assign(password(o), { value: "hunter2", valueFrom: undefined }), /must come from a Secret/);
  expectKafkaProblem((o) => {
    container(o).volumeMounts = container(o).volumeMounts.filter((m) => m.name !== "kafka-cluster-ca");
  }, /kafka.properties.ssl.ca.location: \/etc\/kafka-ca\/ca.crt is not on a mounted volume/);
  expectKafkaProblem((o) => {
    configMap(o).data["mdagg.yaml"] = configMap(o).data["mdagg.yaml"].replace(
      "{ env: KAFKA_PASSWORD }", "{ file: /var/run/secrets/kafka/password }");
  }, /sasl.password: \/var\/run\/secrets\/kafka\/password is not on a mounted Secret/);
});

test("the sharded overlay runs three replicas with SHARD_COUNT 3 and the ordinal as index", () => {
  const objects = sharded();
  assert.equal(sts(objects).spec.replicas, 3);
  const env = Object.fromEntries(container(objects).env.filter((e) => "value" in e).map((e) => [e.name, e.value]));
  assert.equal(env.SHARD_COUNT, "3");
  assert.equal(env.SHARD_INDEX, "auto");
});

test("a schema violation is reported", async () => {
  const objects = sharded();
  container(objects).ports[0].containerPort = "ops";
  sts(objects).spec.replicas = "three";
  const problems = await checkSchemas(objects);
  assert.ok(problems.some((p) => p.startsWith("StatefulSet/mdagg: schema:")), JSON.stringify(problems));
});

test("an unknown kind has no schema and fails", async () => {
  const problems = await checkSchemas([{ apiVersion: "v1", kind: "Podd", metadata: { name: "x" } }]);
  assert.match(problems[0], /no schema/);
});

test("a grace budget too close to the termination grace period fails", () => {
  expectProblem((o) => {
    configMap(o).data["mdagg.yaml"] = configMap(o).data["mdagg.yaml"].replace(/grace: 10s/, "grace: 26s");
  }, /terminationGracePeriodSeconds 30 must be at least shutdown.grace \(26s\) \+ 5s/);
  expectProblem((o) => {
    sts(o).spec.template.spec.terminationGracePeriodSeconds = 12;
  }, /terminationGracePeriodSeconds 12/);
});

test("replicas and SHARD_COUNT must agree", () => {
  expectProblem((o) => {
    sts(o).spec.replicas = 4;
  }, /SHARD_COUNT 3 but 4 replicas/);
});

test("probes must hit the ops endpoints on admin.listen's port", () => {
  expectProblem((o) => {
    container(o).readinessProbe.httpGet.path = "/healthz";
  }, /readinessProbe checks \/healthz, expected \/readyz/);
  expectProblem((o) => {
    container(o).ports[0].containerPort = 9200;
  }, /livenessProbe port ops is not admin.listen's 9100/);
});

test("the security context must stay locked down", () => {
  expectProblem((o) => delete container(o).securityContext.readOnlyRootFilesystem, /readOnlyRootFilesystem/);
  expectProblem((o) => (container(o).securityContext.allowPrivilegeEscalation = true), /allowPrivilegeEscalation/);
  expectProblem((o) => (container(o).securityContext.capabilities.drop = ["NET_RAW"]), /drop ALL/);
  expectProblem((o) => delete sts(o).spec.template.spec.securityContext.runAsNonRoot, /runAsNonRoot/);
});

test("output must go to a writable volume", () => {
  expectProblem((o) => {
    configMap(o).data["mdagg.yaml"] = configMap(o).data["mdagg.yaml"].replace("/var/lib/mdagg/out", "/srv/out");
  }, /output.dir \/srv\/out is not on a writable volume/);
});

const policy = (objects) => objects.find((o) => o.kind === "NetworkPolicy");
const tokenEnv = (objects) => container(objects).env.find((e) => e.name === "MDAGG_ADMIN_TOKEN");

test("the admin token comes from a Secret the pod cannot start without", () => {
  expectProblem((o) => (tokenEnv(o).valueFrom.secretKeyRef.optional = true), /Secret mdagg-admin of MDAGG_ADMIN_TOKEN is optional/);
  expectProblem((o) => Object.assign(tokenEnv(o), { value: "hunter2", valueFrom: undefined }), /must come from a Secret/);
  expectProblem((o) => {
    container(o).env = container(o).env.filter((e) => e.name !== "MDAGG_ADMIN_TOKEN");
  }, /MDAGG_ADMIN_TOKEN is not set in the container/);
  expectProblem((o) => {
    configMap(o).data["mdagg.yaml"] = configMap(o).data["mdagg.yaml"].replace(/ +token_env: .*\n/, "");
  }, /admin.listen 0.0.0.0:9100 is not loopback and the config names no admin.token_env/);
  // admin.token_file (a mounted Secret) instead of the variable.
  const withFile = (o) => {
    configMap(o).data["mdagg.yaml"] = configMap(o).data["mdagg.yaml"].replace(/token_env: .*/, "token_file: /etc/mdagg-admin/token");
    sts(o).spec.template.spec.volumes.push({ name: "admin-token", secret: { secretName: "mdagg-admin" } });
    container(o).volumeMounts.push({ name: "admin-token", mountPath: "/etc/mdagg-admin", readOnly: true });
  };
  const objects0 = sharded();
  withFile(objects0);
  assert.deepEqual(checkWorkloads(objects0), []);
  expectProblem((o) => {
    withFile(o);
    sts(o).spec.template.spec.volumes.at(-1).secret.optional = true;
  }, /Secret mdagg-admin holding admin.token_file is optional/);
  expectProblem((o) => {
    withFile(o);
    container(o).volumeMounts.pop();
  }, /admin.token_file \/etc\/mdagg-admin\/token is not on a mounted Secret/);
  // --check-config sees the variable only when a required Secret sets it.
  const objects = sharded();
  assert.equal(tokenEnvOf(objects, configMap(objects).metadata.name), "MDAGG_ADMIN_TOKEN");
  tokenEnv(objects).valueFrom.secretKeyRef.optional = true;
  assert.equal(tokenEnvOf(objects, configMap(objects).metadata.name), undefined);
});

test("a NetworkPolicy admits only the scraper and the nodes, only to the ops port", () => {
  expectProblem((o) => o.splice(o.indexOf(policy(o)), 1), /no NetworkPolicy isolates the pods' ingress/);
  expectProblem((o) => (policy(o).spec.podSelector = { matchLabels: { app: "other" } }), /no NetworkPolicy isolates/);
  expectProblem((o) => (policy(o).spec.policyTypes = ["Egress"]), /no NetworkPolicy isolates/);
  expectProblem((o) => delete policy(o).spec.ingress[0].ports, /ingress\[0\]: admits every port/);
  expectProblem((o) => policy(o).spec.ingress[0].ports.push({ port: 22 }), /admits port 22, not only the ops port 9100/);
  expectProblem((o) => delete policy(o).spec.ingress[0].from, /admits every peer/);
  expectProblem((o) => policy(o).spec.ingress[0].from.push({ ipBlock: { cidr: "0.0.0.0/0" } }), /0.0.0.0\/0 admits every address/);
  expectProblem((o) => delete policy(o).spec.ingress[0].from[0].podSelector, /admits every pod of the selected namespaces/);
  expectProblem((o) => (policy(o).spec.ingress[0].from[0].namespaceSelector = {}), /empty namespaceSelector/);
  expectProblem((o) => policy(o).spec.ingress.push({ ports: [{ port: "ops" }] }), /ingress\[1\]: admits every peer/);
  // A node CIDR for the probes is fine beside the scraper, but not instead of it.
  const objects = sharded();
  policy(objects).spec.ingress[0].from.push({ ipBlock: { cidr: "10.0.0.0/16" } });
  assert.deepEqual(checkWorkloads(objects), []);
  policy(objects).spec.ingress[0].from.shift();
  assert.match(checkWorkloads(objects).join("\n"), /no NetworkPolicy admits the scraper's pods/);
});

test("a PodDisruptionBudget lets node drains evict one pod at a time", () => {
  const pdb = (o) => o.find((x) => x.kind === "PodDisruptionBudget");
  expectProblem((o) => o.splice(o.indexOf(pdb(o)), 1), /no PodDisruptionBudget selects the pods/);
  expectProblem((o) => (pdb(o).spec.maxUnavailable = 0), /maxUnavailable 0 blocks every eviction/);
  expectProblem((o) => (pdb(o).spec.maxUnavailable = 2), /more than one shard/);
  expectProblem((o) => {
    delete pdb(o).spec.maxUnavailable;
    pdb(o).spec.minAvailable = 3;
  }, /minAvailable 3 of 3 replicas blocks every eviction/);
});

const monitoring = () => render(join(deployDir, "monitoring"));
const base = () => render(join(deployDir, "base"));

test("the ServiceMonitor scrapes the ops port of mdagg's Service", async () => {
  assert.deepEqual(checkMonitoring(monitoring(), base()), []);
  assert.deepEqual(await checkSchemas(monitoring()), []);
  let m = monitoring();
  m.find((o) => o.kind === "ServiceMonitor").spec.endpoints[0].port = "metrics";
  assert.match(checkMonitoring(m, base()).join(), /endpoint port metrics is not a port of Service\/mdagg/);
  m = monitoring();
  m.find((o) => o.kind === "ServiceMonitor").spec.selector.matchLabels = { "app.kubernetes.io/name": "mdag" };
  assert.match(checkMonitoring(m, base()).join(), /selects no Service/);
});

test("the Prometheus Operator kinds are checked against their schema", async () => {
  const m = monitoring();
  m.find((o) => o.kind === "ServiceMonitor").spec.endpoints[0].scrapeInterval = "15s";
  m.find((o) => o.kind === "PrometheusRule").spec.groups[0].rules[0].record = "x";
  m.find((o) => o.kind === "PrometheusRule").spec.groups[0].rules[1].expr = 3;
  assert.deepEqual(await checkSchemas(m), [
    "PrometheusRule/mdagg: schema: spec.groups[0].rules[1].expr: number, expected string",
    "PrometheusRule/mdagg: schema: spec.groups[0].rules[0]: needs exactly one of alert and record",
    "ServiceMonitor/mdagg: schema: spec.endpoints[0].scrapeInterval: unknown field",
  ]);
});

test("promtool passes the rules and their unit tests, and fails a changed threshold", () => {
  assert.match(promtool(ruleGroups()), /SUCCESS/);
  const changed = (alert, edit) => {
    const groups = ruleGroups();
    const rule = groups.groups[0].rules.find((r) => r.alert === alert);
    edit(rule);
    return groups;
  };
  assert.throws(() => promtool(changed("MdaggHostPaused", (r) => (r.for = "20m"))), /test rules.*failed[\s\S]*MdaggHostPaused/);
  assert.throws(
    () => promtool(changed("MdaggPollErrorRate", (r) => (r.expr = r.expr.replace("> 0.05", "> 0.005")))),
    /MdaggPollErrorRate/,
  );
  assert.throws(() => promtool(changed("MdaggDown", (r) => (r.expr = "up{job=\"mdagg\"} == "))), /check rules.*failed/);
});

test("the dashboard is importable and every panel follows the datasource and pod variables", () => {
  const d = JSON.parse(readFileSync(join(deployDir, "monitoring", "mdagg-dashboard.json"), "utf8"));
  assert.deepEqual(dashboardProblems(d), []);
  const panel = d.panels.find((p) => p.type !== "row");
  panel.datasource = { type: "prometheus", uid: "prometheus" };
  panel.targets[0].expr = panel.targets[0].expr.replace(/, pod=~"\$pod"/g, "");
  delete d.uid;
  assert.deepEqual(dashboardProblems(d), [
    "dashboard: no uid (imports would duplicate it)",
    `dashboard panel "${panel.title}": datasource is not \${datasource}`,
    `dashboard panel "${panel.title}" A: does not filter on $pod`,
  ]);
});

test("durations parse as the daemon reads them", () => {
  assert.equal(parseDuration("10s"), 10);
  assert.equal(parseDuration("1500ms"), 1.5);
  assert.equal(parseDuration("2m"), 120);
  assert.equal(parseDuration("1.5h"), 5400);
  assert.equal(parseDuration("10"), undefined);
});
