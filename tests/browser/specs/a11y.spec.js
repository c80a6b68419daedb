// axe-core finds no serious or critical WCAG 2.1 A/AA violation in any view, in either theme.

"use strict";

const { test, expect } = require("@playwright/test");
const AxeBuilder = require("@axe-core/playwright").default;
const { nodes, shot, useTheme } = require("../nodes");

const VIEWS = [
  ["chat", "#/chat/room/lobby", "# lobby"],
  ["tools", "#/tools", "Tool browser"],
  ["network", "#/network", "Network"],
];

for (const theme of ["light", "dark"]) {
  test.describe(`accessibility, ${theme} theme`, () => {
    for (const [name, hash, heading] of VIEWS) {
      test(`${name} view`, async ({ page }, testInfo) => {
        const { a } = nodes();
        await useTheme(page, theme);
        await page.goto(`${a.http}/${hash}`);
        await expect(page.locator("html")).toHaveAttribute("data-theme", theme);
        await expect(page.getByRole("heading", { level: 1, name: heading })).toBeVisible();
        await expect(page.locator("#net-status")).toHaveAttribute("data-state", "online");
        if (name === "chat") {
          // Something in the list, so bubbles are checked too.
          await page.getByRole("textbox", { name: "Message" }).fill(`axe ${theme}`);
          await page.getByRole("textbox", { name: "Message" }).press("Enter");
          await expect(page.locator(".msg.mine .status").last()).toHaveText(/Sent|Delivered/);
        }
        if (name === "network") await expect(page.locator("table.peers")).toBeVisible();
        const results = await new AxeBuilder({ page })
          .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"])
          .analyze();
        const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
        const report = serious.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).join("\n  ")}`);
        await shot(page, testInfo, `a11y-${name}-${theme}`);
        expect(report, report.join("\n")).toEqual([]);
      });
    }
  });
}
