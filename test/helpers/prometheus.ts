/**
 * Real Prometheus and Alertmanager (Debian packages) for end-to-end tests: each started on a free
 * loopback port with its own temporary directory, and stopped (directory removed) afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";

export const prometheusBinary = "/usr/bin/prometheus";
export const alertmanagerBinary = "/usr/bin/prometheus-alertmanager";
export const amtoolBinary = "/usr/bin/amtool";

export interface AlertingStack {
  prometheusUrl: string;
  alertmanagerUrl: string;
  /** Output of both processes so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface AlertingOptions {
  /** host:port Prometheus scrapes every second. */
  scrapeTarget: string;
  /** Rule file content (YAML). */
  rules: string;
  /** Where Alertmanager posts its webhook, and the bearer token it sends. */
  webhookUrl: string;
  webhookToken: string;
  /** Labels Alertmanager groups by. */
  groupBy?: string[];
}

async function waitReady(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url} exited early:\n${output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms:\n${output()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Starts Alertmanager, then Prometheus pointed at it, both on loopback only. */
export async function startAlertingStack(options: AlertingOptions): Promise<AlertingStack> {
  const dir = await mkdtemp(join(tmpdir(), "shipbot-alerting-"));
  const [amPort, promPort] = [await freePort(), await freePort()];
  const logs: string[] = [];
  const output = () => logs.join("").slice(-6_000);
  const children: ChildProcess[] = [];
  const start = (binary: string, args: string[]) => {
    const child = spawn(binary, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (c: Buffer) => logs.push(c.toString()));
    child.stderr?.on("data", (c: Buffer) => logs.push(c.toString()));
    children.push(child);
    return child;
  };
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await writeFile(
      join(dir, "alertmanager.yml"),
      [
        "route:",
        "  receiver: shipbot",
        `  group_by: [${(options.groupBy ?? ["alertname", "service", "env"]).join(", ")}]`,
        "  group_wait: 1s",
        "  group_interval: 1s",
        "  repeat_interval: 1h",
        "receivers:",
        "  - name: shipbot",
        "    webhook_configs:",
        `      - url: ${JSON.stringify(options.webhookUrl)}`,
        "        send_resolved: true",
        "        http_config:",
        "          authorization:",
        "            type: Bearer",
        `            credentials: ${JSON.stringify(options.webhookToken)}`,
        "",
      ].join("\n"),
    );
    const am = start(alertmanagerBinary, [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "am-data")}`,
      `--web.listen-address=127.0.0.1:${amPort}`,
      // Empty: no gossip listener on 0.0.0.0.
      "--cluster.listen-address=",
    ]);
    const alertmanagerUrl = `http://127.0.0.1:${amPort}`;
    await waitReady(`${alertmanagerUrl}/-/ready`, am, output);

    await writeFile(join(dir, "rules.yml"), options.rules);
    await writeFile(
      join(dir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files: [rules.yml]",
        "alerting:",
        "  alertmanagers:",
        `    - static_configs: [{ targets: ["127.0.0.1:${amPort}"] }]`,
        "scrape_configs:",
        "  - job_name: shipbot-e2e",
        `    static_configs: [{ targets: [${JSON.stringify(options.scrapeTarget)}] }]`,
        "",
      ].join("\n"),
    );
    const prom = start(prometheusBinary, [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "prom-data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      // Without it the first alert can be dropped before Alertmanager is discovered, and resent a minute later.
      "--rules.alert.resend-delay=1s",
    ]);
    const prometheusUrl = `http://127.0.0.1:${promPort}`;
    await waitReady(`${prometheusUrl}/-/ready`, prom, output);
    return { prometheusUrl, alertmanagerUrl, output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Runs amtool against an Alertmanager and returns its standard output. */
export async function runAmtool(args: string[]): Promise<string> {
  const child = spawn(amtoolBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`amtool ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}
