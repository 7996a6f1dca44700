import fc from "fast-check";

/**
 * Property tests draw new inputs on every local run, to keep finding things. CI (`CI=true`) uses one fixed
 * seed so a submission's result does not depend on luck; `FUZZ_SEED=<n>` replays or explores any seed.
 */
const seed = process.env.FUZZ_SEED ?? (process.env.CI === "true" ? "20261123" : undefined);
if (seed !== undefined && seed !== "") fc.configureGlobal({ seed: Number(seed) });
