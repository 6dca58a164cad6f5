// The seed document's own example as an npm app (Express): run by tests/sdk/harness.py.
//
// "import-product-images" is the document's function as it shows it; "create-user" puts
// its other step.run snippets together (async and synchronous handlers, a step with no
// return value, a returned Date serialized as JSON, and Promise.all of three steps).
// Every side effect is one line in $SDK_TEST_LEDGER, so a test can count them.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");
const { Inngest } = require("inngest");
const { serve } = require("inngest/express");

const LEDGER = process.env.SDK_TEST_LEDGER;
const PORT = Number(process.env.PORT);
const inngest = new Inngest({ id: process.env.SDK_TEST_APP_ID || "seed-app" });

function effect(line) {
  fs.appendFileSync(LEDGER, line + "\n");
}

// The document's helpers, made concrete: an "S3 copy" and a tiny "database".
async function copyAllImagesToS3(imageURLs) {
  effect("copy-images-to-s3");
  return imageURLs.map((url) => `s3://product-images/${url.split("/").pop()}`);
}

function transformData(result) {
  effect("transform");
  return { ...result, name: result.name.toUpperCase() };
}

const db = {
  insert(row) {
    effect(`insert-data:${JSON.stringify(row)}`);
  },
};

const importProductImages = inngest.createFunction(
  { id: "import-product-images", triggers: [{ event: "shop/product.imported" }] },
  async ({ event, step }) => {
    const uploadedImageURLs = await step.run("copy-images-to-s3", async () => {
      return copyAllImagesToS3(event.data.imageURLs);
    });
  },
);

const createUser = inngest.createFunction(
  { id: "create-user", triggers: [{ event: "shop/user.signed-up" }] },
  async ({ event, step }) => {
    // Steps can have async handlers
    const result = await step.run("get-api-data", async () => {
      effect("get-api-data");
      // Steps should return data used in other steps
      return (await fetch(`http://127.0.0.1:${PORT}/api-data?email=${event.data.email}`)).json();
    });

    // Steps can have synchronous handlers
    const data = await step.run("transform", () => {
      return transformData(result);
    });

    // Returning data is optional
    await step.run("insert-data", async () => {
      db.insert(data);
    });

    const user = await step.run("create-user", () => {
      effect("create-user");
      return { id: crypto.randomBytes(12).toString("hex"), createdAt: new Date() };
    });

    // Use with a Promise helper function to run in parallel
    const [subscription, crm, email] = await Promise.all([
      step.run("create-subscription", () => {
        effect("create-subscription");
        return { plan: "free", user: user.id };
      }),
      step.run("add-to-crm", () => {
        effect("add-to-crm");
        return `crm:${data.email}`;
      }),
      step.run("send-welcome-email", () => {
        effect("send-welcome-email");
        return `welcome sent to ${data.email}`;
      }),
    ]);
    return { user, data, subscription, crm, email };
  },
);

const app = express();
app.use(express.json({ limit: "10mb" }));
app.get("/health", (_req, res) => res.json({ ok: true }));
app.get("/api-data", (req, res) => res.json({ name: "ann", email: req.query.email }));
app.use("/api/inngest", serve({ client: inngest, functions: [importProductImages, createUser] }));
app.listen(PORT, "127.0.0.1");
