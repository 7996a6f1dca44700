/**
 * BullMQ's Lua scripts and version as its CommonJS build exports them (the build Node loads). The
 * worker's fetch wraps two of them (acquire-on-fetch.ts); test/integration/acquire-on-fetch.test.ts
 * checks the wrapped fetch against BullMQ's own on every upgrade.
 */
declare module "bullmq/dist/cjs/scripts/index.js" {
  interface RawScript {
    name: string;
    content: string;
    keys: number;
  }
  export const moveToActive: RawScript;
  export const moveToFinished: RawScript;
}

declare module "bullmq/dist/cjs/version.js" {
  export const version: string;
}
