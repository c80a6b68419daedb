// Agents across the mesh, through the agent endpoints of /tmp/dawn-agent-api.md: the sidebar
// directory grouped by node, a tool called from a generated form on the other node's agent,
// and a conversation with an agent through its `chat` tool.

"use strict";

const { test, expect } = require("@playwright/test");
const { nodes, shot, watchErrors } = require("../nodes");

/** Waits until A's directory lists the echo agent of both nodes. */
async function directoryReady(request, a, b) {
  const first = await request.get(`${a.http}/api/agents`);
  if (first.status() === 404) {
    throw new Error("node A does not serve GET /api/agents: the agent endpoints have not landed");
  }
  await expect
    .poll(
      async () => {
        const response = await request.get(`${a.http}/api/agents`);
        if (!response.ok()) return `HTTP ${response.status()}`;
        const directory = await response.json();
        const echoOn = (id) =>
          (directory.nodes || []).some((n) => n.node_id === id && (n.agents || []).some((g) => g.agent_id === "echo"));
        return echoOn(a.node_id) && echoOn(b.node_id) ? "ready" : "waiting";
      },
      { timeout: 30_000, message: "A's /api/agents lists echo on both nodes" },
    )
    .toBe("ready");
}

test.describe("agents", () => {
  test("the sidebar lists agents grouped by node with presence", async ({ page, request }, testInfo) => {
    const { a, b } = nodes();
    await directoryReady(request, a, b);
    await page.goto(`${a.http}/`);
    const list = page.locator("#agent-list");
    await expect(list.locator(".node-group")).toHaveCount(2);
    const local = list.locator(".node-group", { hasText: "This node" });
    await expect(local.getByRole("button", { name: /Echo/ })).toBeVisible();
    const remote = list.locator(".node-group", { hasText: b.node_id.slice(0, 8) });
    await expect(remote.getByRole("button", { name: /Echo.*online/ })).toBeVisible();
    await shot(page, testInfo, "agents-sidebar");
  });

  test("calls echo on node B from node A's tool browser", async ({ page, request }, testInfo) => {
    const { a, b } = nodes();
    await directoryReady(request, a, b);
    const errors = watchErrors(page);
    await page.goto(`${a.http}/#/tools`);
    await page.getByRole("combobox", { name: "Agent", exact: true }).selectOption(`${b.node_id}/echo`);
    await expect(page).toHaveURL(new RegExp(`#/tools/${b.node_id}/echo`));
    const tool = page.locator('details.tool[data-tool="echo"]');
    await tool.locator("summary").click();

    // Required fields are checked before anything is sent.
    await tool.getByRole("button", { name: "Call echo" }).click();
    const text = tool.getByRole("textbox", { name: /text/ });
    await expect(text).toHaveAttribute("aria-invalid", "true");
    await expect(tool.getByText("This field is required.")).toBeVisible();
    await expect(text).toBeFocused();

    await text.fill("hello across the mesh");
    await tool.getByRole("button", { name: "Call echo" }).click();
    const card = tool.locator("details.result").first();
    await expect(card).toHaveAttribute("open", "");
    await expect(card.locator(".badge")).toHaveText("ok");
    await expect(card.locator(".result-text")).toHaveText("hello across the mesh");
    await expect(card).toContainText('"text": "hello across the mesh"');
    await shot(page, testInfo, "tools-echo");
    expect(errors).toEqual([]);
  });

  test("talks to the echo agent on node B in the chat window", async ({ page, request }, testInfo) => {
    const { a, b } = nodes();
    await directoryReady(request, a, b);
    await page.goto(`${a.http}/#/chat/agent/${b.node_id}/echo`);
    await expect(page.getByRole("heading", { level: 1, name: "Echo" })).toBeVisible();
    const input = page.getByRole("textbox", { name: "Message" });
    await input.fill("ping over QUIC");
    await input.press("Enter");
    const reply = page.locator(".msg.agent", { hasText: "Echo: ping over QUIC" });
    await expect(reply).toBeVisible();
    await expect(page.locator("#announcer")).toHaveText("Echo replied: Echo: ping over QUIC");
    await expect(page.locator(".msg.mine .status").last()).toHaveText(/Answered/);
    await shot(page, testInfo, "chat-agent");
    // The conversation is kept across reloads.
    await page.reload();
    await expect(page.locator(".msg.agent", { hasText: "Echo: ping over QUIC" })).toBeVisible();
  });
});
