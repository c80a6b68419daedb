// Playwright against Debian's Chromium (never a downloaded browser) and two real nodes.

"use strict";

const { defineConfig } = require("@playwright/test");

const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

module.exports = defineConfig({
  testDir: "./specs",
  outputDir: "./artifacts/results",
  globalSetup: require.resolve("./global-setup.js"),
  timeout: 60_000,
  expect: { timeout: 10_000 },
  // Two cores and two nodes: one browser at a time keeps timings honest.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  reporter: [["list"]],
  use: {
    browserName: "chromium",
    launchOptions: {
      executablePath,
      // Running as root (CI) needs Chromium's sandbox off.
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    colorScheme: "light",
  },
  projects: [
    { name: "desktop", use: { viewport: { width: 1280, height: 800 } } },
    {
      name: "phone",
      use: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
      testMatch: /(app|a11y)\.spec\.js/,
    },
  ],
});
