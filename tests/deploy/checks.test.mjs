// The checks catch what they claim to: each case breaks one rule in a real render.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { checkSchemas, checkWorkloads, deployDir, parseDuration, render } from "./checks.mjs";

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

test("durations parse as the daemon reads them", () => {
  assert.equal(parseDuration("10s"), 10);
  assert.equal(parseDuration("1500ms"), 1.5);
  assert.equal(parseDuration("2m"), 120);
  assert.equal(parseDuration("1.5h"), 5400);
  assert.equal(parseDuration("10"), undefined);
});
