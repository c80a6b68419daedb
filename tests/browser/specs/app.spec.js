// The app loads from a real node with a strict CSP, shows the node and its peer, switches
// and remembers the theme, and works with the keyboard and on a phone-sized screen.

"use strict";

const { test, expect } = require("@playwright/test");
const { nodes, shot, watchErrors } = require("../nodes");

test.describe("app shell", () => {
  test("loads with a strict CSP, no errors, and shows the node and its peer", async ({ page, request }, testInfo) => {
    const { a } = nodes();
    const response = await request.get(`${a.http}/`);
    expect(response.status()).toBe(200);
    expect(response.headers()["content-type"]).toBe("text/html; charset=utf-8");
    const csp = response.headers()["content-security-policy"];
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");

    const errors = watchErrors(page);
    await page.goto(`${a.http}/`);
    await expect(page).toHaveTitle(/Dawn/);
    await expect(page.locator("#node-id")).toHaveAttribute("title", a.node_id);
    await expect(page.locator("#enc-status")).toContainText("QUIC · TLS 1.3 · Ed25519");
    await expect(page.locator("#net-status")).toHaveAttribute("data-state", "online");
    await expect(page.locator("#net-status")).toContainText("1 peer");
    await expect(page.getByRole("heading", { level: 1, name: "# lobby" })).toBeVisible();
    await shot(page, testInfo, "chat-empty-or-history");
    expect(errors).toEqual([]);
  });

  test("the theme toggle switches and remembers the theme", async ({ page }, testInfo) => {
    const { a } = nodes();
    await page.goto(`${a.http}/`);
    const html = page.locator("html");
    await expect(html).toHaveAttribute("data-theme", "light");
    const toggle = page.getByRole("button", { name: "Dark theme" });
    await expect(toggle).toHaveAttribute("aria-pressed", "false");
    await toggle.click();
    await expect(html).toHaveAttribute("data-theme", "dark");
    await expect(toggle).toHaveAttribute("aria-pressed", "true");
    await shot(page, testInfo, "theme-dark");
    await page.reload();
    await expect(html).toHaveAttribute("data-theme", "dark");
    await page.getByRole("button", { name: "Dark theme" }).click();
    await expect(html).toHaveAttribute("data-theme", "light");
    await page.reload();
    await expect(html).toHaveAttribute("data-theme", "light");
  });

  test("follows the system colour scheme until a theme is chosen", async ({ browser }) => {
    const { a } = nodes();
    const context = await browser.newContext({ colorScheme: "dark" });
    const page = await context.newPage();
    await page.goto(`${a.http}/`);
    await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
    await context.close();
  });

  test("the network view shows the peer, its connection, view and encryption", async ({ page }, testInfo) => {
    const { a, b } = nodes();
    await page.goto(`${a.http}/#/network`);
    await expect(page.getByRole("heading", { level: 1, name: "Network" })).toBeVisible();
    const row = page.locator(`tr[data-peer="${b.node_id}"]`);
    await expect(row).toContainText("Connected");
    await expect(row).toContainText("direct");
    await expect(row).toContainText("Active (neighbour)");
    await expect(row).toContainText(b.quic);
    await expect(page.locator("#fact-id")).toHaveText(a.node_id);
    await expect(page.getByText("TLS 1.3 with raw public keys (RFC 7250)")).toBeVisible();
    await shot(page, testInfo, "network");
  });

  test("keyboard: skip link, visible focus and tab navigation", async ({ page, isMobile }) => {
    test.skip(isMobile, "no hardware keyboard on a phone");
    const { a } = nodes();
    await page.goto(`${a.http}/`);
    await page.keyboard.press("Tab");
    const skip = page.getByRole("link", { name: "Skip to main content" });
    await expect(skip).toBeFocused();
    await expect(skip).toBeInViewport();
    await page.keyboard.press("Enter");
    await expect(page.locator("#main")).toBeFocused();
    // The tabs are links reachable by keyboard, and the focus ring is drawn.
    const tools = page.getByRole("link", { name: "Tools" });
    await tools.focus();
    const outline = await tools.evaluate((el) => getComputedStyle(el).outlineStyle);
    expect(outline).toBe("solid");
    await page.keyboard.press("Enter");
    await expect(page).toHaveURL(/#\/tools/);
    await expect(tools).toHaveAttribute("aria-current", "page");
  });

  test("on a phone the sidebar is a drawer that Escape closes", async ({ page, isMobile }, testInfo) => {
    test.skip(!isMobile, "the drawer exists on narrow screens only");
    const { a } = nodes();
    await page.goto(`${a.http}/`);
    const menu = page.getByRole("button", { name: "Agents and rooms" });
    await expect(menu).toBeVisible();
    await expect(page.locator("#sidebar")).toBeHidden();
    await menu.click();
    await expect(menu).toHaveAttribute("aria-expanded", "true");
    await expect(page.locator("#sidebar")).toBeVisible();
    await expect(page.locator("#sidebar").getByRole("button", { name: /lobby/ })).toBeVisible();
    await shot(page, testInfo, "drawer");
    await page.keyboard.press("Escape");
    await expect(menu).toHaveAttribute("aria-expanded", "false");
    await expect(page.locator("#sidebar")).toBeHidden();
    await shot(page, testInfo, "chat");
  });

  test("the old status page lives on at /status", async ({ request }) => {
    const { a } = nodes();
    const response = await request.get(`${a.http}/status`);
    expect(response.status()).toBe(200);
    expect(await response.text()).toContain(a.node_id);
  });
});
