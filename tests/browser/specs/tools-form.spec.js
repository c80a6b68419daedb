// The tool browser's generated forms, driven by a listing the browser is handed (the node's
// agent endpoints are replaced by fixtures in the page), so every JSON-schema shape the form
// generator knows is checked: types, required fields, bounds, enums, objects and arrays.

"use strict";

const { test, expect } = require("@playwright/test");
const { nodes, shot } = require("../nodes");

const NODE = "a".repeat(52);

const DIRECTORY = {
  nodes: [
    {
      node_id: NODE,
      local: false,
      online: true,
      agents: [
        {
          agent_id: "kitchen",
          name: "Kitchen",
          description: "Every schema shape",
          version: 1,
          tools: ["order"],
          resources: ["menu://today"],
          prompts: ["suggest"],
        },
      ],
    },
  ],
};

const LISTING = {
  node_id: NODE,
  agent_id: "kitchen",
  tools: [
    {
      name: "order",
      description: "Orders a dish.",
      inputSchema: {
        type: "object",
        required: ["dish", "count", "size"],
        properties: {
          dish: { type: "string", description: "What to cook", minLength: 3, maxLength: 20 },
          count: { type: "integer", minimum: 1, maximum: 5 },
          price: { type: "number" },
          size: { type: "string", enum: ["small", "large"] },
          spicy: { type: "boolean" },
          address: {
            type: "object",
            properties: { street: { type: "string" }, floor: { type: "integer" } },
            required: ["street"],
          },
          extras: { type: "array", items: { type: "string" }, maxItems: 2 },
          note: { type: ["string", "null"] },
          raw: { type: "object" },
        },
      },
    },
  ],
  resources: [{ uri: "menu://today", name: "Today's menu", description: "What there is", mimeType: "text/plain" }],
  prompts: [{ name: "suggest", description: "Suggests a dish", arguments: [{ name: "mood", description: "How you feel", required: true }] }],
};

test("the form follows the schema, validates, and shows each call as a card", async ({ page }, testInfo) => {
  const { a } = nodes();
  const calls = [];
  await page.route("**/api/agents", (route) => route.fulfill({ json: DIRECTORY }));
  await page.route(`**/api/agents/${NODE}/kitchen`, (route) => route.fulfill({ json: LISTING }));
  await page.route(`**/api/agents/${NODE}/kitchen/tools/order`, async (route) => {
    const args = route.request().postDataJSON();
    calls.push(args);
    if (args.dish === "forbidden") {
      await route.fulfill({ status: 403, json: { error: { code: "auth.denied", message: "the trust policy denies kitchen" } } });
      return;
    }
    await route.fulfill({
      json: { result: { content: [{ type: "text", text: `cooking ${args.count} ${args.dish}` }], isError: false, structuredContent: { ok: true } }, elapsed_ms: 3.5 },
    });
  });
  await page.route(`**/api/agents/${NODE}/kitchen/resources/read`, (route) =>
    route.fulfill({ json: { contents: [{ uri: "menu://today", mimeType: "text/plain", text: "soup, bread" }] } }),
  );
  await page.route(`**/api/agents/${NODE}/kitchen/prompts/suggest`, (route) =>
    route.fulfill({ json: { messages: [{ role: "user", content: { type: "text", text: `cook for a ${route.request().postDataJSON().arguments.mood} day` } }] } }),
  );

  await page.goto(`${a.http}/#/tools/${NODE}/kitchen`);
  const tool = page.locator('details.tool[data-tool="order"]');
  await tool.locator("summary").click();

  // Every shape became the right control, labelled.
  await expect(tool.getByRole("textbox", { name: "dish" })).toBeVisible();
  await expect(tool.getByRole("spinbutton", { name: "count" })).toHaveAttribute("step", "1");
  await expect(tool.getByRole("spinbutton", { name: "price" })).toHaveAttribute("step", "any");
  await expect(tool.getByRole("combobox", { name: "size" })).toBeVisible();
  await expect(tool.getByRole("checkbox", { name: "spicy" })).toBeVisible();
  await expect(tool.getByRole("group", { name: "address" })).toBeVisible();
  await expect(tool.getByRole("group", { name: "extras" })).toBeVisible();
  await expect(tool.getByText("Enter a JSON object.")).toBeVisible();

  // Validation: required fields and bounds, with the first problem focused.
  await tool.getByRole("button", { name: "Call order" }).click();
  await expect(tool.getByRole("textbox", { name: "dish" })).toBeFocused();
  await expect(tool.locator(".error-text", { hasText: "This field is required." }).first()).toBeVisible();
  await expect(tool.getByText("Choose a value.")).toBeVisible();
  await tool.getByRole("textbox", { name: "dish" }).fill("ab");
  await tool.getByRole("spinbutton", { name: "count" }).fill("9");
  await tool.getByRole("button", { name: "Call order" }).click();
  await expect(tool.getByText("Must be at least 3 characters.")).toBeVisible();
  await expect(tool.getByText("Must be at most 5.")).toBeVisible();
  await tool.getByRole("spinbutton", { name: "count" }).fill("2.5");
  await tool.getByRole("button", { name: "Call order" }).click();
  await expect(tool.getByText("Enter a whole number.")).toBeVisible();
  await tool.getByRole("textbox", { name: "raw" }).fill("[1]");
  await tool.getByRole("button", { name: "Call order" }).click();
  await expect(tool.locator(".error-text", { hasText: "Enter a JSON object." })).toBeVisible();
  expect(calls).toEqual([]);

  // A valid call.
  await tool.getByRole("textbox", { name: "dish" }).fill("ramen");
  await tool.getByRole("spinbutton", { name: "count" }).fill("2");
  await tool.getByRole("combobox", { name: "size" }).selectOption({ label: "large" });
  await tool.getByRole("checkbox", { name: "spicy" }).check();
  await tool.getByRole("textbox", { name: "street" }).fill("Main St");
  await tool.getByRole("button", { name: "Add extras item" }).click();
  await tool.getByRole("textbox", { name: "extras item 1" }).fill("egg");
  await tool.getByRole("textbox", { name: "raw" }).fill('{"k": [1, 2]}');
  await tool.getByRole("button", { name: "Call order" }).click();
  await expect.poll(() => calls.length).toBe(1);
  expect(calls[0]).toEqual({ dish: "ramen", count: 2, size: "large", spicy: true, address: { street: "Main St" }, extras: ["egg"], raw: { k: [1, 2] } });
  const card = tool.locator("details.result").first();
  await expect(card.locator(".badge")).toHaveText("ok");
  await expect(card.locator(".result-text")).toHaveText("cooking 2 ramen");
  await expect(card).toContainText("3.5 ms");
  await expect(card).toContainText("Structured content");

  // A denied call is an error card; the older card folds away.
  await tool.getByRole("textbox", { name: "dish" }).fill("forbidden");
  await tool.getByRole("button", { name: "Call order" }).click();
  const denied = tool.locator("details.result").first();
  await expect(denied.locator(".badge")).toHaveText("error");
  await expect(denied).toContainText("the trust policy denies kitchen (auth.denied)");
  await expect(tool.locator("details.result").nth(1)).not.toHaveAttribute("open", "");
  await expect(page.locator("#announcer")).toContainText("order failed");

  // Resources and prompts.
  await page.getByRole("button", { name: "Read Today's menu" }).click();
  await expect(page.getByText("soup, bread", { exact: true })).toBeVisible();
  const prompt = page.locator('details.tool[data-prompt="suggest"]');
  await prompt.locator("summary").click();
  await prompt.getByRole("textbox", { name: "mood" }).fill("rainy");
  await prompt.getByRole("button", { name: "Get suggest" }).click();
  await expect(prompt.getByText("user: cook for a rainy day", { exact: true })).toBeVisible();
  await page.locator("#tools-body").evaluate((el) => el.scrollTo(0, 0));
  await shot(page, testInfo, "tools-form");
});

test("without the agent directory the tool browser and sidebar explain and offer a retry", async ({ page }) => {
  const { a } = nodes();
  let served = false;
  await page.route("**/api/agents", (route) =>
    served
      ? route.fulfill({ json: DIRECTORY })
      : route.fulfill({ status: 404, json: { error: { code: "not_found", message: "no such endpoint: GET /api/agents" } } }),
  );
  await page.goto(`${a.http}/#/tools`);
  await expect(page.locator("#tools-body")).toContainText("does not serve the agent directory yet");
  await expect(page.locator("#agent-list")).toContainText("does not serve the agent directory yet");
  served = true;
  await page.locator("#tools-body").getByRole("button", { name: "Retry" }).click();
  await expect(page.locator("#agent-list").getByRole("button", { name: /Kitchen/ })).toBeVisible();
  await expect(page.locator("#tools-body")).toContainText("Choose an agent");
});
