// The two nodes started by global-setup.js, for the specs.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

const SCREENSHOTS = path.join(__dirname, "artifacts", "screenshots");

function nodes() {
  return JSON.parse(fs.readFileSync(path.join(__dirname, ".nodes.json"), "utf8"));
}

/** Saves a full-page screenshot to artifacts/screenshots/<name>.png. */
async function shot(page, testInfo, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const project = testInfo.project.name;
  const file = path.join(SCREENSHOTS, `${project}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await testInfo.attach(name, { path: file, contentType: "image/png" });
}

/** Collects console errors and CSP violations of a page. */
function watchErrors(page) {
  const errors = [];
  page.on("console", (message) => {
    // A failed fetch (e.g. a 404 the app handles) is logged as "Failed to load resource";
    // what counts is script errors and CSP refusals.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      errors.push(message.text());
    }
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return errors;
}

/** Forces a colour theme before the app loads, as a saved choice. */
async function useTheme(page, theme) {
  await page.addInitScript((value) => {
    window.localStorage.setItem("dawn.theme", value);
  }, theme);
}

module.exports = { nodes, shot, watchErrors, useTheme };
