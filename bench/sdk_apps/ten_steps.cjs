// The SDK benchmark's npm app (Express): a function of $BENCH_STEPS trivial steps.
//
// Started by bench/sdk.py with the pinned npm SDK of tests/sdk/harness.py. Its first step
// returns the wall time (seconds, sub-millisecond) at which it ran, which the function
// returns: the benchmark reads event -> first step latency from it. It mirrors
// ten_steps.py and the native function of bench/sdk.py.
"use strict";

const express = require("express");
const { Inngest } = require("inngest");
const { serve } = require("inngest/express");

const STEPS = Number(process.env.BENCH_STEPS || 10);
const inngest = new Inngest({ id: process.env.SDK_TEST_APP_ID || "bench" });

const tenSteps = inngest.createFunction(
  { id: "ten-steps", triggers: [{ event: "bench/ten-steps" }] },
  async ({ event, step }) => {
    const count = Number(event.data.steps ?? STEPS);
    const first = await step.run("s0", () => (performance.timeOrigin + performance.now()) / 1000);
    for (let i = 1; i < count; i++) {
      await step.run(`s${i}`, () => i);
    }
    return { first, steps: count };
  },
);

const app = express();
app.use(express.json({ limit: "10mb" }));
app.get("/health", (_req, res) => res.json({ ok: true }));
app.use("/api/inngest", serve({ client: inngest, functions: [tenSteps] }));
app.listen(Number(process.env.PORT), "127.0.0.1");
