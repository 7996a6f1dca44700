import { context, ROOT_CONTEXT, type Span, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { Telemetry } from "bullmq";
import { BullMQOtel } from "bullmq-otel";

/**
 * OpenTelemetry traces, off unless configured: chat event → enqueue → worker → Kubernetes and GitHub
 * calls → chat update share one trace. BullMQ's own add-on carries the context from the queue write to
 * the worker; the job's `traceId` field carries it on to the notifier, which renders cards from Redis.
 */
export interface Tracing {
  tracer: Tracer;
  /** For BullMQ's Queue and Worker `telemetry` option. */
  bullmq: Telemetry;
  shutdown(): Promise<void>;
}

export function startTracing(options: {
  endpoint?: string;
  exporter?: SpanExporter;
  serviceName?: string;
}): Tracing | undefined {
  if (!options.endpoint && !options.exporter) return undefined;
  const processor = options.exporter
    ? new SimpleSpanProcessor(options.exporter)
    : new BatchSpanProcessor(new OTLPTraceExporter({ url: options.endpoint ?? "" }));
  const provider = new NodeTracerProvider({ spanProcessors: [processor] });
  provider.register();
  const name = options.serviceName ?? "shipbot";
  return {
    tracer: trace.getTracer(name),
    bullmq: new BullMQOtel({ tracerName: name }) as unknown as Telemetry,
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

/** Runs `work` in a span that records an error as the span's status. */
export async function inSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  attributes: Record<string, string>,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!tracer) return work(undefined);
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** `<trace id>-<span id>` of the active span, stored with a job so later work can join its trace. */
export function currentTraceRef(): string | undefined {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx) ? `${ctx.traceId}-${ctx.spanId}` : undefined;
}

/** A context whose parent is the span a trace reference names, for work that continues elsewhere. */
export function contextFromTraceRef(ref: string | undefined) {
  const match = ref ? /^([0-9a-f]{32})-([0-9a-f]{16})$/.exec(ref) : null;
  if (!match) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[1] as string,
    spanId: match[2] as string,
    traceFlags: 1,
    isRemote: true,
  });
}
