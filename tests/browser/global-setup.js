// Starts two real dawn-node processes on loopback (B bootstraps from A), waits until they are
// gossip neighbours, makes each trust the other (so each may call the other's agents), and writes their addresses to .nodes.json for the specs. Returns the
// teardown that stops them (SIGTERM, then SIGKILL) and removes their data directories.

"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = process.env.DAWN_NODE_BIN || path.join(ROOT, "target", "debug", "dawn-node");
const STATE = path.join(__dirname, ".nodes.json");
const READY_TIMEOUT_MS = 30_000;
const PEERING_TIMEOUT_MS = 30_000;

/** The environment of a node: no DAWN_* settings and no user config file from this machine. */
function nodeEnv(work) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("DAWN_") && key !== "RUST_LOG") env[key] = value;
  }
  env.XDG_CONFIG_HOME = path.join(work, "config");
  env.NO_COLOR = "1";
  return env;
}

function startNode(work, name, extra) {
  const dataDir = path.join(work, name);
  const log = fs.openSync(path.join(work, `${name}.log`), "w");
  const child = spawn(
    BIN,
    ["run", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--dev", "--log", "info", ...extra],
    { env: nodeEnv(work), stdio: ["ignore", "pipe", log] },
  );
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`node ${name} did not print its ready line within ${READY_TIMEOUT_MS} ms; see ${work}/${name}.log`));
    }, READY_TIMEOUT_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited early (code ${code}, signal ${signal}); see ${work}/${name}.log`));
    });
    child.stdout.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      const match = /^dawn-node ready node_id=(\S+) quic=(\S+) http=(\S+)$/m.exec(buffer);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolve({ name, pid: child.pid, child, node_id: match[1], quic: match[2], http: `http://${match[3]}`, data_dir: dataDir });
      }
    });
  });
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

/** Waits until `a` lists `b` as a connected gossip neighbour. */
async function neighbours(a, b) {
  const deadline = Date.now() + PEERING_TIMEOUT_MS;
  for (;;) {
    try {
      const peers = await getJson(`${a.http}/api/peers`);
      const peer = peers.peers.find((p) => p.node_id === b.node_id);
      if (peer && peer.connected && peers.active_view.includes(b.node_id)) return;
    } catch {
      // Not answering yet.
    }
    if (Date.now() > deadline) throw new Error(`${a.name} and ${b.name} did not become gossip neighbours`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `node` vouches for `peer` (PUT /api/trust, allowed on loopback without a token): by default
 * a peer, even a bootstrap one, may not call this node's agents.
 */
async function trust(node, peer) {
  const response = await fetch(`${node.http}/api/trust/${peer.node_id}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ level: "trusted" }),
  });
  if (!response.ok) {
    throw new Error(`${node.name} could not trust ${peer.name}: ${response.status} ${await response.text()}`);
  }
}

function stop(node) {
  return new Promise((resolve) => {
    if (!node || node.child.exitCode !== null || node.child.signalCode !== null) {
      resolve();
      return;
    }
    const kill = setTimeout(() => node.child.kill("SIGKILL"), 10_000);
    node.child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    node.child.kill("SIGTERM");
  });
}

module.exports = async function globalSetup() {
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} is missing: build it with cargo build -p dawn-node-bin (scripts/browser-test does)`);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "dawn-browser-"));
  const started = [];
  const cleanup = async () => {
    await Promise.all(started.map(stop));
    if (!process.env.DAWN_KEEP_NODES) fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(STATE, { force: true });
  };
  const onExit = () => {
    for (const node of started) node.child.kill("SIGKILL");
  };
  process.on("exit", onExit);
  try {
    const a = await startNode(work, "a", []);
    started.push(a);
    const b = await startNode(work, "b", ["--bootstrap", `${a.node_id}@${a.quic}`]);
    started.push(b);
    await neighbours(a, b);
    await neighbours(b, a);
    await trust(a, b);
    await trust(b, a);
    const describe = ({ name, pid, node_id, quic, http, data_dir }) => ({ name, pid, node_id, quic, http, data_dir });
    fs.writeFileSync(STATE, JSON.stringify({ work, a: describe(a), b: describe(b) }, null, 2));
  } catch (error) {
    await cleanup();
    throw error;
  }
  return async () => {
    process.off("exit", onExit);
    await cleanup();
  };
};
