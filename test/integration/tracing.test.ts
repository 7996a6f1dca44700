import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTracing, type Tracing } from "../../src/observability/tracing.ts";
import { chatCommand } from "../helpers/example-config.ts";
import { createGatedExecutor } from "../helpers/gated-executor.ts";
import { startTestRuntime, type TestRuntime } from "../helpers/test-runtime.ts";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let t: TestRuntime;

beforeAll(async () => {
  tracing = startTracing({ exporter }) as Tracing;
});
afterAll(async () => {
  await t?.close();
  await tracing?.shutdown();
});

describe("traces (when configured)", () => {
  it("follow one command from the chat event through the queue and the executor to the chat update", async () => {
    const gated = createGatedExecutor();
    t = await startTestRuntime({ executor: gated.executor, tracing });
    const reply = await t.runtime.handle(chatCommand("/deploy api staging v2"));
    const [call] = await gated.started(1);
    call?.finish();
    await t.waitForPhase(reply.jobIds[0] as string, ["succeeded"]);
    const deadline = Date.now() + 10_000;
    const named = (name: string): ReadableSpan | undefined =>
      exporter.getFinishedSpans().find((s) => s.name === name);
    while (Date.now() < deadline && !named("chat.post") && !named("chat.update"))
      await new Promise((r) => setTimeout(r, 50));

    const command = named("shipbot.command");
    const executor = named("k8s.deploy");
    const chat = named("chat.update") ?? named("chat.post");
    expect(command?.attributes["chat.platform"]).toBe("shell");
    expect(executor?.attributes["shipbot.job"]).toBe(reply.jobIds[0]);
    const traceIds = new Set([command, executor, chat].map((s) => s?.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    // BullMQ's add-on made the queue write and the processing part of the same trace.
    const queueSpans = exporter
      .getFinishedSpans()
      .filter((s) => s.spanContext().traceId === command?.spanContext().traceId);
    expect(queueSpans.length).toBeGreaterThan(3);
  });
});
