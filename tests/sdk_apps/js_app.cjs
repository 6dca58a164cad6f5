// An npm SDK app (Express) for stepstone's tests: run by tests/sdk/harness.py.
//
// Every step records its side effect as one line in $SDK_TEST_LEDGER, so tests can
// check that each step ran exactly as often as it should. Its functions mirror py_app.py.
"use strict";

const fs = require("node:fs");
const express = require("express");
const { Inngest, NonRetriableError, referenceFunction } = require("inngest");
const { serve } = require("inngest/express");

const LEDGER = process.env.SDK_TEST_LEDGER;
const inngest = new Inngest({ id: process.env.SDK_TEST_APP_ID || "js-app" });

// Record a side effect; returns how often this line was recorded, this one included.
function effect(line) {
  fs.appendFileSync(LEDGER, line + "\n");
  return fs
    .readFileSync(LEDGER, "utf8")
    .split("\n")
    .filter((seen) => seen === line).length;
}

const sequential = inngest.createFunction(
  { id: "sequential", triggers: [{ event: "test/sequential" }] },
  async ({ event, step }) => {
    const first = await step.run("one", () => {
      effect("sequential:one");
      return Number(event.data.start ?? 1);
    });
    const second = await step.run("two", () => {
      effect("sequential:two");
      return first + 1;
    });
    return { sum: first + second };
  },
);

const flaky = inngest.createFunction(
  { id: "flaky", retries: 2, triggers: [{ event: "test/flaky" }] },
  async ({ step, attempt }) => {
    return await step.run("flaky", () => {
      if (effect("flaky:attempt") === 1) {
        throw new Error("the first attempt fails");
      }
      return `ok at attempt ${attempt}`;
    });
  },
);

const parallel = inngest.createFunction(
  { id: "parallel", triggers: [{ event: "test/parallel" }] },
  async ({ step }) => {
    const results = await Promise.all([
      step.run("a", () => {
        effect("parallel:a");
        return "a";
      }),
      step.run("b", () => {
        effect("parallel:b");
        return "b";
      }),
    ]);
    const after = await step.run("after", () => {
      effect("parallel:after");
      return results.join("+");
    });
    return [...results, after];
  },
);

const parallelFlaky = inngest.createFunction(
  { id: "parallel-flaky", triggers: [{ event: "test/parallel-flaky" }] },
  async ({ step }) => {
    const results = await Promise.all([
      step.run("steady", () => {
        effect("parallel-flaky:steady");
        return "steady";
      }),
      step.run("wobbly", () => {
        if (effect("parallel-flaky:wobbly") === 1) {
          throw new Error("wobbly fails once");
        }
        return "wobbly";
      }),
    ]);
    const after = await step.run("after", () => {
      effect("parallel-flaky:after");
      return "done";
    });
    return [...results, after];
  },
);

const sleeper = inngest.createFunction(
  { id: "sleeper", triggers: [{ event: "test/sleeper" }] },
  async ({ step }) => {
    await step.run("before", () => {
      effect("sleeper:before");
      return "before";
    });
    await step.sleep("nap", "2s");
    return await step.run("after", () => {
      effect("sleeper:after");
      return "after";
    });
  },
);

const waiter = inngest.createFunction(
  { id: "waiter", triggers: [{ event: "test/waiter" }] },
  async ({ step }) => {
    const approval = await step.waitForEvent("approval", {
      event: "test/approved",
      timeout: "1m",
      match: "data.order",
    });
    if (approval === null) {
      return { approved: false };
    }
    return { approved: true, by: approval.data.by };
  },
);

const nonretriable = inngest.createFunction(
  { id: "nonretriable", triggers: [{ event: "test/nonretriable" }] },
  async ({ step }) => {
    return await step.run("boom", () => {
      effect("nonretriable:boom");
      throw new NonRetriableError("this cannot work");
    });
  },
);

const catcher = inngest.createFunction(
  { id: "catcher", retries: 0, triggers: [{ event: "test/catcher" }] },
  async ({ step }) => {
    try {
      await step.run("broken", () => {
        effect("catcher:broken");
        throw new TypeError("broken for good");
      });
    } catch (err) {
      return `caught ${err.name}: ${err.message}`;
    }
    return "not caught";
  },
);

const invoker = inngest.createFunction(
  { id: "invoker", triggers: [{ event: "test/invoker" }] },
  async ({ step }) => {
    return await step.invoke("call", { function: sequential, data: { start: 10 } });
  },
);

// Invokes a function of another app (a native stepstone one) by its id.
const invokeNative = inngest.createFunction(
  { id: "invoke-native", triggers: [{ event: "test/invoke-native" }] },
  async ({ event, step }) => {
    const target = referenceFunction({ appId: event.data.app, functionId: event.data.function });
    return await step.invoke("call", { function: target, data: { n: 20 } });
  },
);

const sender = inngest.createFunction(
  { id: "sender", triggers: [{ event: "test/sender" }] },
  async ({ step }) => {
    return await step.sendEvent("send", { name: "test/sent", data: { from: "js" } });
  },
);

const failing = inngest.createFunction(
  {
    id: "failing",
    retries: 1,
    triggers: [{ event: "test/failing" }],
    onFailure: async () => "handled",
  },
  async () => {
    throw new Error("always fails");
  },
);

const limited = inngest.createFunction(
  {
    id: "limited",
    triggers: [{ event: "test/limited", if: "event.data.ok == true" }],
    concurrency: [{ limit: 2, key: "event.data.user" }],
    throttle: { limit: 10, period: "1m" },
    rateLimit: { limit: 100, period: "1h" },
    priority: { run: "event.data.vip ? 60 : 0" },
    idempotency: "event.data.request",
    cancelOn: [{ event: "test/stop", match: "data.user" }],
    timeouts: { finish: "5m" },
  },
  async () => "limited",
);

const batched = inngest.createFunction(
  {
    id: "batched",
    triggers: [{ event: "test/batched" }],
    batchEvents: { maxSize: 10, timeout: "5s" },
  },
  async ({ events }) => events.length,
);

const debounced = inngest.createFunction(
  {
    id: "debounced",
    triggers: [{ event: "test/debounced" }],
    debounce: { period: "10s", key: "event.data.user" },
    singleton: { key: "event.data.user", mode: "skip" },
  },
  async () => "debounced",
);

const scheduled = inngest.createFunction(
  { id: "scheduled", triggers: [{ cron: "0 * * * *" }] },
  async () => "tick",
);

// One step that holds its run for data.hold seconds, its start and end in the ledger
// (fn:start|end:<run id>:<unix time>), so a test can measure how many overlapped.
async function held({ event, step, runId }, fn) {
  return await step.run("hold", async () => {
    effect(`${fn}:start:${runId}:${(Date.now() / 1000).toFixed(6)}`);
    await new Promise((resolve) => setTimeout(resolve, Number(event.data.hold ?? 0.5) * 1000));
    effect(`${fn}:end:${runId}:${(Date.now() / 1000).toFixed(6)}`);
    return runId;
  });
}

const oneAtATime = inngest.createFunction(
  { id: "one-at-a-time", triggers: [{ event: "test/one-at-a-time" }], concurrency: { limit: 1 } },
  async (ctx) => held(ctx, "one-at-a-time"),
);

const twoAtATime = inngest.createFunction(
  { id: "two-at-a-time", triggers: [{ event: "test/two-at-a-time" }], concurrency: { limit: 2 } },
  async (ctx) => held(ctx, "two-at-a-time"),
);

const functions = [
  sequential,
  flaky,
  parallel,
  parallelFlaky,
  sleeper,
  waiter,
  nonretriable,
  catcher,
  invoker,
  invokeNative,
  sender,
  failing,
  limited,
  batched,
  debounced,
  scheduled,
  oneAtATime,
  twoAtATime,
];
// SDK_TEST_FUNCTIONS=a,b serves only those (a re-sync then drops the others)
const wanted = (process.env.SDK_TEST_FUNCTIONS || "").split(",").filter(Boolean);
const served = wanted.length ? functions.filter((fn) => wanted.includes(fn.id())) : functions;

const app = express();
app.use(express.json({ limit: "10mb" }));
app.get("/health", (_req, res) => res.json({ ok: true }));
app.use("/api/inngest", serve({ client: inngest, functions: served }));
app.listen(Number(process.env.PORT), "127.0.0.1");
