// People on two nodes talk through the mesh chat room: A's page and B's page, each served by
// its own node, the messages carried by gossip between the nodes.

"use strict";

const { test, expect } = require("@playwright/test");
const { nodes, shot, watchErrors } = require("../nodes");

async function openAs(browser, node, nick) {
  const context = await browser.newContext();
  await context.addInitScript((name) => window.localStorage.setItem("dawn.nick", JSON.stringify(name)), nick);
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${node.http}/#/chat/room/lobby`);
  await expect(page.locator("#net-status")).toHaveAttribute("data-state", "online");
  await expect(page.getByLabel("Your name")).toHaveValue(nick);
  return { context, page, errors };
}

test.describe("mesh chat room", () => {
  test("a message sent from A's page appears on B's page, with typing and delivery", async ({ browser }, testInfo) => {
    const { a, b } = nodes();
    const ada = await openAs(browser, a, "ada");
    const grace = await openAs(browser, b, "grace");
    const tag = Date.now().toString(36);

    // Typing on A shows on B.
    const input = ada.page.getByRole("textbox", { name: "Message" });
    await input.fill(`hello from ada ${tag}`);
    await input.press("End");
    await input.type("!");
    await expect(grace.page.locator("#typing")).toHaveText("ada is typing…");

    // Enter sends.
    await input.press("Enter");
    await expect(input).toHaveValue("");
    const sent = ada.page.locator(".msg.mine", { hasText: `hello from ada ${tag}!` });
    await expect(sent).toBeVisible();
    await expect(sent.locator(".status")).toHaveText(/Delivered to 1 node/);

    const received = grace.page.locator(".msg", { hasText: `hello from ada ${tag}!` });
    await expect(received).toBeVisible();
    await expect(received).not.toHaveClass(/mine/);
    await expect(received.locator(".who")).toHaveText("ada");
    await expect(received).toContainText(`node ${a.node_id.slice(0, 8)}`);
    await expect(grace.page.locator("#typing")).toHaveText("");

    // B answers; A hears it, and the polite live region announces the whole message.
    const reply = grace.page.getByRole("textbox", { name: "Message" });
    await reply.fill(`hi ada, grace here ${tag}`);
    await grace.page.getByRole("button", { name: "Send" }).click();
    await expect(ada.page.locator(".msg", { hasText: `hi ada, grace here ${tag}` })).toBeVisible();
    await expect(ada.page.locator("#announcer")).toHaveText(`grace in lobby: hi ada, grace here ${tag}`);
    await expect(ada.page.locator("#announcer")).toHaveAttribute("aria-live", "polite");

    await shot(ada.page, testInfo, "chat-a");
    await shot(grace.page, testInfo, "chat-b");

    // Search and filter on B.
    await grace.page.getByRole("searchbox", { name: "Search messages" }).fill(`ada ${tag}`);
    await expect(grace.page.locator(".msg")).toHaveCount(1);
    await expect(grace.page.locator(".msg mark")).toHaveText(`ada ${tag}`);
    await grace.page.getByRole("searchbox", { name: "Search messages" }).fill("");
    await grace.page.getByLabel("Show messages").selectOption("mine");
    await expect(grace.page.locator(".msg", { hasText: `hello from ada ${tag}` })).toHaveCount(0);
    await expect(grace.page.locator(".msg.mine", { hasText: `grace here ${tag}` })).toBeVisible();
    await grace.page.getByLabel("Show messages").selectOption("all");

    // History survives a reload (the node keeps it).
    await grace.page.reload();
    await expect(grace.page.locator(".msg", { hasText: `hello from ada ${tag}!` })).toBeVisible();
    await expect(grace.page.locator(".msg.mine", { hasText: `grace here ${tag}` })).toBeVisible();

    expect(ada.errors).toEqual([]);
    expect(grace.errors).toEqual([]);
    await ada.context.close();
    await grace.context.close();
  });

  test("rooms: joining a new room on both nodes, unread counts, and bad names refused", async ({ browser }) => {
    const { a, b } = nodes();
    const ada = await openAs(browser, a, "ada");
    const grace = await openAs(browser, b, "grace");
    const name = `room-${Date.now().toString(36)}`;

    const field = ada.page.getByRole("textbox", { name: "Join or create a room" });
    await field.fill("Not A Room!");
    await ada.page.getByRole("button", { name: "Join" }).click();
    await expect(ada.page.locator("#join-room-error")).toContainText("1 to 32 characters");
    await expect(field).toHaveAttribute("aria-invalid", "true");

    for (const page of [ada.page, grace.page]) {
      await page.getByRole("textbox", { name: "Join or create a room" }).fill(name);
      await page.getByRole("button", { name: "Join" }).click();
      await expect(page.getByRole("heading", { level: 1, name: `# ${name}` })).toBeVisible();
    }
    // Grace looks at the lobby; a message in the new room counts as unread there.
    await grace.page.locator("#room-list").getByRole("button", { name: /lobby/ }).click();
    await ada.page.getByRole("textbox", { name: "Message" }).fill("anyone here?");
    await ada.page.getByRole("textbox", { name: "Message" }).press("Enter");
    const roomButton = grace.page.locator("#room-list").getByRole("button", { name: new RegExp(name) });
    await expect(roomButton).toContainText("1 unread");
    await roomButton.click();
    await expect(grace.page.locator(".msg", { hasText: "anyone here?" })).toBeVisible();
    await expect(roomButton).not.toContainText("unread");

    await ada.context.close();
    await grace.context.close();
  });

  test("an empty message is not sent and says why", async ({ browser }) => {
    const { a } = nodes();
    const ada = await openAs(browser, a, "ada");
    await ada.page.getByRole("button", { name: "Send" }).click();
    await expect(ada.page.locator("#composer-error")).toHaveText("Write a message first.");
    await expect(ada.page.getByRole("textbox", { name: "Message" })).toBeFocused();
    await ada.context.close();
  });
});
