import fc from "fast-check";
import { Packr, unpack } from "msgpackr";
import { describe, expect, it } from "vitest";
import { createJobPacker } from "../../src/queue/create-job-writer.ts";

/** BullMQ's own packer settings (its Redis backend): what the add scripts are written against. */
const bullmq = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

const backoff = { type: "exponential" as const, delay: 2_000 };
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

describe("the job argument packer", () => {
  it("writes the bytes BullMQ's packer writes for the arguments and options of any job", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        // ids as shipbot makes them, and longer or non-ASCII ones, past each string header's size
        fc.oneof(fc.stringMatching(/^j[0-9a-z]{12}$/), fc.string({ minLength: 1, maxLength: 70_000 })),
        fc.constantFrom("k8s.deploy", "k8s.rollback", "k8s.scale"),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 0, max: 100_000 }),
        // real timestamps, and whole numbers around msgpack's switch from integers to floats
        fc.oneof(
          fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }),
          fc.integer({ min: 0, max: 2 ** 32 + 3 }),
        ),
        (prefix, jobId, name, priority, attempts, delay, timestamp) => {
          const pack = createJobPacker(prefix);
          const args = pack.args(jobId, name, timestamp);
          expect(hex(args)).toBe(
            hex(bullmq.pack([prefix, jobId, name, timestamp, null, null, undefined, undefined, null, null])),
          );
          const opts = { jobId, priority, attempts, backoff: { ...backoff, delay } };
          const packed = pack.opts(opts);
          const expected = { attempts, jobId, priority, backoff: opts.backoff };
          expect(unpack(packed)).toEqual(expected);
          expect(hex(packed)).toBe(hex(bullmq.pack(expected)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("switches string headers where MessagePack does (31/32, 255/256, 65,535/65,536 bytes)", () => {
    const pack = createJobPacker("p");
    for (const length of [31, 32, 255, 256, 65_535, 65_536]) {
      for (const id of ["x".repeat(length), `é${"x".repeat(length - 2)}`]) {
        expect(hex(pack.args(id, "k8s.scale", 1))).toBe(
          hex(bullmq.pack(["p", id, "k8s.scale", 1, null, null, undefined, undefined, null, null])),
        );
      }
    }
  });

  it("keeps a packed job's options apart from the next job's (parts made once are not shared)", () => {
    const pack = createJobPacker("shipbot:{ops}:");
    const a = pack.opts({ jobId: "ja", priority: 2, attempts: 3, backoff });
    const b = pack.opts({ jobId: "jbbbbbbbbbbbb", priority: 2, attempts: 3, backoff });
    expect(unpack(a)).toMatchObject({ jobId: "ja" });
    expect(unpack(b)).toMatchObject({ jobId: "jbbbbbbbbbbbb" });
  });
});
