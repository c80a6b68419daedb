// Dawn web UI: agents, mesh chat, tool browser and network view of one node.
// Hand-written, no build step, no dependencies. Everything the user or the mesh supplies is
// put into the page as text (textContent), never as HTML.

"use strict";

// ------------------------------------------------------------------ small helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element: h("p", { class: "x", onclick: f }, "text", child). */
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

let idCounter = 0;
const uid = (prefix) => `${prefix}-${++idCounter}`;

const store = {
  get(key, fallback) {
    try {
      const raw = window.localStorage.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch {
      // Private mode or full: history simply is not kept.
    }
  },
};

/** Thrown by api(): an HTTP error with the node's `{"error":{code,message}}` body. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The node did not answer. Is it still running?");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `${response.status} ${response.statusText}`.trim(),
    );
  }
  return data;
}

const shortId = (id) => (id ? `${id.slice(0, 8)}…` : "");

function clock(ms) {
  const date = new Date(ms);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function fullTime(ms) {
  return new Date(ms).toLocaleString();
}

function ago(ms) {
  if (!ms) return "never";
  const secs = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (secs < 2) return "now";
  if (secs < 120) return `${secs} s ago`;
  if (secs < 7200) return `${Math.round(secs / 60)} min ago`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} days ago`;
}

function uptime(secs) {
  const d = Math.floor(secs / 86400);
  const hh = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60;
  const s = secs % 60;
  if (d) return `${d}d ${hh}h ${m}m`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** Text with every occurrence of `query` wrapped in <mark>. */
function highlight(text, query) {
  const fragment = document.createDocumentFragment();
  if (!query) {
    fragment.append(text);
    return fragment;
  }
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  let at = 0;
  for (;;) {
    const found = lower.indexOf(needle, at);
    if (found < 0) break;
    fragment.append(text.slice(at, found), h("mark", {}, text.slice(found, found + needle.length)));
    at = found + needle.length;
  }
  fragment.append(text.slice(at));
  return fragment;
}

const announcer = () => $("#announcer");

/** Says `text` once through the polite live region (complete messages only). */
function announce(text) {
  const region = announcer();
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 60);
}

const pretty = (value) => JSON.stringify(value, null, 2);

// ------------------------------------------------------------------ state

const ROOM_RE = /^[a-z0-9-]{1,32}$/;
const AGENT_HISTORY = 100;

const state = {
  node: null, // GET /api/status
  peers: null, // GET /api/peers
  directory: null, // GET /api/agents
  directoryError: null,
  live: false,
  everLive: false,
  view: "chat",
  convo: { kind: "room", room: "lobby" },
  rooms: new Map(), // room -> { messages, loaded, unread }
  agentChats: new Map(), // "node/agent" -> [message]
  pendingAgent: new Set(), // "node/agent" waiting for a reply
  typers: new Map(), // "room|origin|nick" -> { room, nick, until }
  nick: store.get("dawn.nick", null),
  toolAgent: null, // "node/agent"
  listings: new Map(), // "node/agent" -> listing or { error }
  results: new Map(), // "node/agent/kind/name" -> [card data]
  lastTypingSent: 0,
};

if (typeof state.nick !== "string" || !state.nick.trim()) {
  const bytes = new Uint8Array(2);
  window.crypto.getRandomValues(bytes);
  state.nick = `guest-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  store.set("dawn.nick", state.nick);
}

function room(name) {
  let entry = state.rooms.get(name);
  if (!entry) {
    entry = { messages: [], loaded: false, unread: 0 };
    state.rooms.set(name, entry);
  }
  return entry;
}

const agentKey = (nodeId, agentId) => `${nodeId}/${agentId}`;

function findAgent(key) {
  if (!state.directory || !key) return null;
  for (const node of state.directory.nodes || []) {
    for (const agent of node.agents || []) {
      if (agentKey(node.node_id, agent.agent_id) === key) return { node, agent };
    }
  }
  return null;
}

function agentLabel(key) {
  const found = findAgent(key);
  if (found) return found.agent.name || found.agent.agent_id;
  return key ? key.split("/")[1] : "";
}

function agentChat(key) {
  let messages = state.agentChats.get(key);
  if (!messages) {
    messages = store.get(`dawn.agentchat.${key}`, []);
    if (!Array.isArray(messages)) messages = [];
    state.agentChats.set(key, messages);
  }
  return messages;
}

function saveAgentChat(key) {
  const messages = agentChat(key).filter((m) => m.status !== "pending").slice(-AGENT_HISTORY);
  store.set(`dawn.agentchat.${key}`, messages);
}

// ------------------------------------------------------------------ theme

function setupTheme() {
  const button = $("#theme-toggle");
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  const sync = () => {
    const dark = document.documentElement.getAttribute("data-theme") === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.title = dark ? "Switch to the light theme" : "Switch to the dark theme";
  };
  button.addEventListener("click", () => {
    const dark = document.documentElement.getAttribute("data-theme") !== "dark";
    const theme = dark ? "dark" : "light";
    document.documentElement.setAttribute("data-theme", theme);
    store.set("dawn.theme", theme);
    // theme.js reads the raw string.
    try {
      window.localStorage.setItem("dawn.theme", theme);
    } catch {
      // Not kept; the toggle still works for this page.
    }
    sync();
  });
  media.addEventListener("change", (event) => {
    let saved = null;
    try {
      saved = window.localStorage.getItem("dawn.theme");
    } catch {
      saved = null;
    }
    if (saved !== "dark" && saved !== "light") {
      document.documentElement.setAttribute("data-theme", event.matches ? "dark" : "light");
      sync();
    }
  });
  sync();
}

// ------------------------------------------------------------------ routing

function parseHash() {
  const parts = window.location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter(Boolean)
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return "";
      }
    });
  const view = ["chat", "tools", "network"].includes(parts[0]) ? parts[0] : "chat";
  const route = { view };
  if (view === "chat" && parts[1] === "room" && ROOM_RE.test(parts[2] || "")) {
    route.convo = { kind: "room", room: parts[2] };
  } else if (view === "chat" && parts[1] === "agent" && parts[2] && parts[3]) {
    route.convo = { kind: "agent", key: agentKey(parts[2], parts[3]) };
  } else if (view === "tools" && parts[1] && parts[2]) {
    route.toolAgent = agentKey(parts[1], parts[2]);
  }
  return route;
}

function navigate(hash) {
  if (window.location.hash === hash) applyRoute();
  else window.location.hash = hash;
}

function chatHash(convo) {
  return convo.kind === "room" ? `#/chat/room/${convo.room}` : `#/chat/agent/${convo.key}`;
}

function applyRoute() {
  const route = parseHash();
  state.view = route.view;
  if (route.convo) state.convo = route.convo;
  if (route.toolAgent) state.toolAgent = route.toolAgent;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    if (link.dataset.view === "chat") link.setAttribute("href", chatHash(state.convo));
  }
  $("#view-chat").hidden = state.view !== "chat";
  $("#view-tools").hidden = state.view !== "tools";
  $("#view-network").hidden = state.view !== "network";
  document.title = { chat: "Chat", tools: "Tools", network: "Network" }[state.view] + " · Dawn";
  closeDrawer(false);
  renderSidebar();
  if (state.view === "chat") openConversation();
  if (state.view === "tools") renderTools();
  if (state.view === "network") renderNetwork();
}

// ------------------------------------------------------------------ drawer (narrow screens)

function openDrawer() {
  const sidebar = $("#sidebar");
  sidebar.classList.add("open");
  $("#menu-toggle").setAttribute("aria-expanded", "true");
  if (!$(".scrim")) document.body.append(h("div", { class: "scrim", onclick: () => closeDrawer(true) }));
  const first = sidebar.querySelector("button, input, a");
  if (first) first.focus();
}

function closeDrawer(returnFocus) {
  const sidebar = $("#sidebar");
  if (!sidebar.classList.contains("open")) return;
  sidebar.classList.remove("open");
  $("#menu-toggle").setAttribute("aria-expanded", "false");
  const scrim = $(".scrim");
  if (scrim) scrim.remove();
  if (returnFocus) $("#menu-toggle").focus();
}

// ------------------------------------------------------------------ header status

function renderHeader() {
  const pill = $("#net-status");
  const text = $("#net-status-text");
  const peers = state.node ? state.node.peer_count : 0;
  if (!state.live) {
    pill.dataset.state = "offline";
    text.textContent = state.everLive ? "Reconnecting…" : "Connecting…";
  } else if (peers === 0) {
    pill.dataset.state = "alone";
    text.textContent = "Online · no peers";
  } else {
    pill.dataset.state = "online";
    text.textContent = `Online · ${plural(peers, "peer", "peers")}`;
  }
  if (state.node) {
    const id = $("#node-id");
    id.textContent = `node ${shortId(state.node.node_id)}`;
    id.title = state.node.node_id;
  }
  $("#enc-status").title =
    "Every connection is QUIC with TLS 1.3, both sides authenticated by their Ed25519 node keys (raw public keys); gossip messages are signed by their origin.";
}

async function loadStatus() {
  const first = !state.node;
  try {
    state.node = await api("/api/status");
  } catch {
    // The header shows the event stream's state; the next poll retries.
  }
  renderHeader();
  // Which messages are "mine" depends on the node id.
  if (first && state.node && state.view === "chat") renderMessages(false);
  if (state.view === "network") updateNodeFacts();
}

async function loadPeers() {
  try {
    state.peers = await api("/api/peers");
  } catch {
    return;
  }
  if (state.view === "network") renderPeers();
}

// ------------------------------------------------------------------ agents directory

async function loadAgents() {
  try {
    state.directory = await api("/api/agents");
    state.directoryError = null;
  } catch (error) {
    state.directoryError = error;
    if (error.status === 404 && error.code === "not_found") state.directory = null;
  }
  renderSidebar();
  if (state.view === "tools") renderTools();
  if (state.view === "chat" && state.convo.kind === "agent") renderChatHeader();
}

function directoryNotice(compact) {
  const error = state.directoryError;
  const missing = error && error.status === 404 && error.code === "not_found";
  const message = missing
    ? "This node does not serve the agent directory yet."
    : `The agent directory could not be loaded: ${error ? error.message : "unknown error"}`;
  return h(
    "div",
    { class: "notice error", role: compact ? null : "status" },
    h("span", {}, message),
    h("button", { type: "button", class: "secondary", onclick: () => loadAgents() }, "Retry"),
  );
}

function agentCount() {
  if (!state.directory) return 0;
  return (state.directory.nodes || []).reduce((n, node) => n + (node.agents || []).length, 0);
}

// ------------------------------------------------------------------ sidebar

function renderSidebar() {
  const rooms = $("#room-list");
  const names = Array.from(state.rooms.keys()).sort((a, b) =>
    a === "lobby" ? -1 : b === "lobby" ? 1 : a.localeCompare(b),
  );
  rooms.replaceChildren(
    ...names.map((name) => {
      const entry = room(name);
      const current = state.view === "chat" && state.convo.kind === "room" && state.convo.room === name;
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "side-item",
            "aria-current": current ? "true" : null,
            dataset: { room: name },
            onclick: () => navigate(`#/chat/room/${name}`),
          },
          h("span", { class: "hash", "aria-hidden": "true" }, "#"),
          h("span", { class: "label" }, h("span", { class: "name" }, name)),
          entry.unread
            ? h("span", { class: "unread" }, String(entry.unread), h("span", { class: "visually-hidden" }, " unread"))
            : null,
        ),
      );
    }),
  );

  const list = $("#agent-list");
  $("#agent-count").textContent = String(agentCount());
  if (!state.directory) {
    list.replaceChildren(
      state.directoryError ? directoryNotice(true) : h("p", { class: "hint" }, "Loading agents…"),
    );
    return;
  }
  const nodes = (state.directory.nodes || []).slice().sort((a, b) => (b.local ? 1 : 0) - (a.local ? 1 : 0));
  if (!nodes.some((node) => (node.agents || []).length)) {
    list.replaceChildren(h("p", { class: "hint" }, "No agents on the mesh yet."));
    return;
  }
  list.replaceChildren(
    ...nodes.map((node) => {
      const headingId = uid("node");
      return h(
        "div",
        { class: "node-group" },
        h(
          "h3",
          { class: "node-heading", id: headingId, title: node.node_id },
          h("span", { class: `presence${node.online ? " online" : ""}`, "aria-hidden": "true" }),
          node.local ? "This node" : "Node",
          h("code", {}, shortId(node.node_id)),
          h("span", { class: "visually-hidden" }, node.online ? ", online" : ", offline"),
          node.online ? null : h("span", { class: "tag" }, "offline"),
        ),
        h(
          "ul",
          { "aria-labelledby": headingId },
          ...(node.agents || []).map((agent) => {
            const key = agentKey(node.node_id, agent.agent_id);
            const current =
              (state.view === "chat" && state.convo.kind === "agent" && state.convo.key === key) ||
              (state.view === "tools" && state.toolAgent === key);
            const tools = (agent.tools || []).length;
            return h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "side-item",
                  "aria-current": current ? "true" : null,
                  dataset: { agent: key },
                  onclick: () =>
                    navigate(state.view === "tools" ? `#/tools/${key}` : `#/chat/agent/${key}`),
                },
                h("span", { class: `presence${node.online ? " online" : ""}`, "aria-hidden": "true" }),
                h(
                  "span",
                  { class: "label" },
                  h("span", { class: "name" }, agent.name || agent.agent_id),
                  h(
                    "span",
                    { class: "sub" },
                    `${agent.agent_id} · ${plural(tools, "tool", "tools")}`,
                    h("span", { class: "visually-hidden" }, node.online ? ", online" : ", offline"),
                  ),
                ),
              ),
            );
          }),
        ),
      );
    }),
  );
}

// ------------------------------------------------------------------ chat: rooms

function isMine(message) {
  return state.node && message.origin === state.node.node_id && message.nick === state.nick;
}

async function loadRoom(name) {
  try {
    const history = await api(`/api/chat/${name}?limit=200`);
    const entry = room(name);
    const pending = entry.messages.filter((m) => m.pending);
    const byId = new Map(history.messages.map((m) => [m.id, m]));
    for (const old of entry.messages) {
      if (!old.pending && !byId.has(old.id)) byId.set(old.id, old);
    }
    entry.messages = Array.from(byId.values())
      .sort((a, b) => a.received_unix_ms - b.received_unix_ms)
      .concat(pending);
    entry.loaded = true;
    entry.error = null;
  } catch (error) {
    room(name).error = error;
  }
  if (state.view === "chat" && state.convo.kind === "room" && state.convo.room === name) {
    renderMessages(true);
  }
  renderSidebar();
}

async function loadRooms() {
  try {
    const list = await api("/api/chat");
    for (const info of list.rooms || []) room(info.room);
  } catch {
    // The lobby is always shown.
  }
  room("lobby");
  renderSidebar();
}

function onChatEvent(message) {
  const entry = room(message.room);
  let index = entry.messages.findIndex((m) => m.id === message.id);
  if (index < 0 && isMine(message)) {
    // Our own message, back over the event stream before the POST answered.
    index = entry.messages.findIndex((m) => m.pending && !m.failed && m.text === message.text && m.nick === message.nick);
  }
  if (index >= 0) {
    entry.messages[index] = message;
  } else {
    entry.messages.push(message);
    if (entry.messages.length > 400) entry.messages.splice(0, entry.messages.length - 400);
  }
  clearTyper(message.room, message.origin, message.nick);
  const visible = state.view === "chat" && state.convo.kind === "room" && state.convo.room === message.room;
  const mine = isMine(message);
  if (visible) {
    renderMessages(mine);
    if (!mine && index < 0) announce(`${message.nick} in ${message.room}: ${message.text}`);
  } else if (!mine && index < 0) {
    entry.unread += 1;
    renderSidebar();
  }
}

function onReceiptEvent(receipt) {
  const entry = state.rooms.get(receipt.room);
  if (!entry) return;
  const message = entry.messages.find((m) => m.id === receipt.id);
  if (!message) return;
  message.delivered_to = message.delivered_to || [];
  if (!message.delivered_to.includes(receipt.by)) message.delivered_to.push(receipt.by);
  if (state.view === "chat" && state.convo.kind === "room" && state.convo.room === receipt.room) {
    renderMessages(false);
  }
}

const TYPING_SHOWN_MS = 4000;

function onTypingEvent(event) {
  if (state.node && event.origin === state.node.node_id && event.nick === state.nick) return;
  state.typers.set(`${event.room}|${event.origin}|${event.nick}`, {
    room: event.room,
    nick: event.nick,
    until: Date.now() + TYPING_SHOWN_MS,
  });
  renderTyping();
  window.setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
}

function clearTyper(roomName, origin, nick) {
  if (state.typers.delete(`${roomName}|${origin}|${nick}`)) renderTyping();
}

function renderTyping() {
  const line = $("#typing");
  const now = Date.now();
  for (const [key, typer] of state.typers) if (typer.until <= now) state.typers.delete(key);
  if (state.convo.kind === "agent") {
    const waiting = state.pendingAgent.has(state.convo.key);
    line.textContent = waiting ? `${agentLabel(state.convo.key)} is replying…` : "";
    return;
  }
  const names = Array.from(state.typers.values())
    .filter((t) => t.room === state.convo.room)
    .map((t) => t.nick);
  if (names.length === 0) line.textContent = "";
  else if (names.length === 1) line.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) line.textContent = `${names[0]} and ${names[1]} are typing…`;
  else line.textContent = "Several people are typing…";
}

async function sendToRoom(name, text) {
  const nick = $("#nick").value.trim();
  if (!nick || nick.length > 32) {
    showComposerError("Enter a name of 1 to 32 characters first.", $("#nick"));
    return false;
  }
  setNick(nick);
  const entry = room(name);
  const pending = {
    pending: true,
    id: uid("pending"),
    room: name,
    origin: state.node ? state.node.node_id : "",
    nick,
    text,
    sent_unix_ms: Date.now(),
    received_unix_ms: Date.now(),
    delivered_to: [],
  };
  entry.messages.push(pending);
  renderMessages(true);
  try {
    const message = await api(`/api/chat/${name}`, { method: "POST", body: { text, nick } });
    const at = entry.messages.indexOf(pending);
    if (entry.messages.some((m) => m.id === message.id)) {
      if (at >= 0) entry.messages.splice(at, 1);
    } else if (at >= 0) {
      entry.messages[at] = message;
    } else {
      entry.messages.push(message);
    }
    renderMessages(true);
    return true;
  } catch (error) {
    pending.failed = error.message;
    renderMessages(false);
    showComposerError(`Not sent: ${error.message}`);
    return false;
  }
}

function setNick(nick) {
  if (nick && nick !== state.nick) {
    state.nick = nick;
    store.set("dawn.nick", nick);
  }
}

// ------------------------------------------------------------------ chat: agents

function textOf(result) {
  const content = (result && result.content) || [];
  const texts = content.filter((c) => c && c.type === "text").map((c) => c.text);
  if (texts.length) return texts.join("\n");
  if (result && result.structuredContent !== undefined) return pretty(result.structuredContent);
  return content.length ? `(${content.map((c) => c.type).join(", ")} content)` : "(empty reply)";
}

async function sendToAgent(key, text) {
  const [nodeId, agentId] = key.split("/");
  const messages = agentChat(key);
  const mine = { id: uid("m"), role: "user", text, time: Date.now(), status: "pending" };
  messages.push(mine);
  state.pendingAgent.add(key);
  renderMessages(true);
  renderTyping();
  const started = performance.now();
  try {
    const response = await api(
      `/api/agents/${encodeURIComponent(nodeId)}/${encodeURIComponent(agentId)}/tools/chat`,
      { method: "POST", body: { message: text } },
    );
    const result = response.result || {};
    mine.status = "answered";
    const reply = {
      id: uid("m"),
      role: result.isError ? "error" : "agent",
      text: textOf(result),
      time: Date.now(),
      elapsed: response.elapsed_ms ?? Math.round(performance.now() - started),
      result,
    };
    messages.push(reply);
    announce(`${agentLabel(key)} replied: ${reply.text}`);
  } catch (error) {
    mine.status = "failed";
    const denied = error.code === "auth.denied";
    messages.push({
      id: uid("m"),
      role: "error",
      text: denied ? `Denied by the trust policy: ${error.message}` : error.message,
      time: Date.now(),
    });
    announce(`${agentLabel(key)} did not reply: ${error.message}`);
  } finally {
    state.pendingAgent.delete(key);
  }
  saveAgentChat(key);
  if (state.view === "chat" && state.convo.kind === "agent" && state.convo.key === key) {
    renderMessages(true);
  }
  renderTyping();
}

// ------------------------------------------------------------------ chat: view

function renderChatHeader() {
  const title = $("#chat-title");
  const subtitle = $("#chat-subtitle");
  const input = $("#message-input");
  $("#nick-row").hidden = state.convo.kind !== "room";
  if (state.convo.kind === "room") {
    title.textContent = `# ${state.convo.room}`;
    subtitle.textContent = `Mesh chat room on gossip topic dawn/chat/${state.convo.room} · messages are signed by their node`;
    input.placeholder = `Message #${state.convo.room}`;
    input.disabled = false;
    $("#send-button").disabled = false;
    return;
  }
  const found = findAgent(state.convo.key);
  const [nodeId, agentId] = state.convo.key.split("/");
  title.textContent = found ? found.agent.name || agentId : agentId;
  const where = found && found.node.local ? "this node" : `node ${shortId(nodeId)}`;
  const hasChat = !found || (found.agent.tools || []).includes("chat");
  subtitle.textContent = hasChat
    ? `Agent ${agentId} on ${where} · replies through its chat tool`
    : `Agent ${agentId} on ${where} · it has no chat tool; use the tool browser`;
  input.placeholder = `Message ${title.textContent}`;
  input.disabled = !hasChat;
  $("#send-button").disabled = !hasChat;
}

function openConversation() {
  renderChatHeader();
  if (state.convo.kind === "room") {
    const entry = room(state.convo.room);
    entry.unread = 0;
    renderSidebar();
    if (!entry.loaded) loadRoom(state.convo.room);
  }
  renderMessages(true);
  renderTyping();
}

function messageMatches(text, query) {
  return !query || text.toLowerCase().includes(query.toLowerCase());
}

function roomStatus(message) {
  if (message.failed) return h("p", { class: "status", dataset: { state: "failed" } }, "Not sent");
  if (message.pending) return h("p", { class: "status", dataset: { state: "sending" } }, "Sending…");
  const count = (message.delivered_to || []).length;
  if (count) {
    return h(
      "p",
      { class: "status", dataset: { state: "delivered" }, title: message.delivered_to.join("\n") },
      h("span", { "aria-hidden": "true" }, "✓✓"),
      ` Delivered to ${plural(count, "node", "nodes")}`,
    );
  }
  return h("p", { class: "status", dataset: { state: "sent" } }, h("span", { "aria-hidden": "true" }, "✓"), " Sent");
}

function roomMessage(message, query) {
  const mine = isMine(message);
  const sameNode = state.node && message.origin === state.node.node_id;
  return h(
    "li",
    { class: `msg${mine ? " mine" : ""}`, dataset: { id: message.id } },
    h(
      "p",
      { class: "meta" },
      h("span", { class: "who" }, mine ? "You" : message.nick),
      h("span", { title: message.origin }, sameNode ? "this node" : `node ${shortId(message.origin)}`),
      h("time", { datetime: new Date(message.sent_unix_ms).toISOString(), title: fullTime(message.sent_unix_ms) }, clock(message.sent_unix_ms)),
    ),
    h("div", { class: "bubble" }, highlight(message.text, query)),
    mine ? roomStatus(message) : null,
  );
}

function agentMessage(key, message, query) {
  const mine = message.role === "user";
  const name = agentLabel(key);
  const status =
    mine && message.status === "pending"
      ? h("p", { class: "status", dataset: { state: "sending" } }, "Sent, waiting for the reply…")
      : mine && message.status === "failed"
        ? h("p", { class: "status", dataset: { state: "failed" } }, "No reply")
        : mine
          ? h("p", { class: "status", dataset: { state: "delivered" } }, h("span", { "aria-hidden": "true" }, "✓✓"), " Answered")
          : null;
  return h(
    "li",
    { class: `msg${mine ? " mine" : message.role === "error" ? " error" : " agent"}`, dataset: { id: message.id } },
    h(
      "p",
      { class: "meta" },
      h("span", { class: "who" }, mine ? "You" : name),
      message.elapsed !== undefined ? h("span", {}, `${Number(message.elapsed).toFixed(1)} ms`) : null,
      h("time", { datetime: new Date(message.time).toISOString(), title: fullTime(message.time) }, clock(message.time)),
    ),
    h("div", { class: "bubble" }, highlight(message.text, query)),
    message.result
      ? h("details", {}, h("summary", {}, "Tool result"), h("pre", {}, pretty(message.result)))
      : null,
    status,
  );
}

function renderMessages(scrollToEnd) {
  const list = $("#messages");
  const query = $("#chat-search").value.trim();
  const filter = $("#chat-filter").value;
  const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  let items = [];
  let total = 0;
  if (state.convo.kind === "room") {
    const entry = room(state.convo.room);
    total = entry.messages.length;
    items = entry.messages
      .filter((m) => (filter === "mine" ? isMine(m) : filter === "others" ? !isMine(m) : true))
      .filter((m) => messageMatches(m.text, query) || messageMatches(m.nick, query))
      .map((m) => roomMessage(m, query));
    if (entry.error && !entry.loaded) {
      list.replaceChildren(
        h(
          "li",
          { class: "empty" },
          h("strong", {}, "The room could not be loaded"),
          entry.error.message,
          " ",
          h("button", { type: "button", class: "secondary", onclick: () => loadRoom(state.convo.room) }, "Retry"),
        ),
      );
      return;
    }
  } else {
    const key = state.convo.key;
    const messages = agentChat(key);
    total = messages.length;
    items = messages
      .filter((m) => (filter === "mine" ? m.role === "user" : filter === "others" ? m.role !== "user" : true))
      .filter((m) => messageMatches(m.text, query))
      .map((m) => agentMessage(key, m, query));
    if (!state.directory && state.directoryError && total === 0) {
      list.replaceChildren(h("li", { class: "empty" }, directoryNotice(false)));
      return;
    }
  }
  if (items.length === 0) {
    const empty =
      total === 0
        ? state.convo.kind === "room"
          ? ["No messages yet", "Say hello: everyone in this room on every node of the mesh will see it."]
          : ["No messages yet", `Ask ${agentLabel(state.convo.key)} something.`]
        : ["Nothing matches", "Change the search or the filter to see more messages."];
    list.replaceChildren(h("li", { class: "empty" }, h("strong", {}, empty[0]), empty[1]));
    return;
  }
  list.replaceChildren(...items);
  if (scrollToEnd || nearEnd) list.scrollTop = list.scrollHeight;
}

function showComposerError(text, focus) {
  $("#composer-error").textContent = text;
  if (focus) focus.focus();
}

function setupComposer() {
  const form = $("#composer");
  const input = $("#message-input");
  const nick = $("#nick");
  nick.value = state.nick;
  nick.addEventListener("change", () => {
    const value = nick.value.trim();
    if (value) setNick(value);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    $("#composer-error").textContent = "";
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 192)}px`;
    if (state.convo.kind !== "room" || !input.value.trim()) return;
    const now = Date.now();
    if (now - state.lastTypingSent < 2000) return;
    state.lastTypingSent = now;
    const name = nick.value.trim() || state.nick;
    api(`/api/chat/${state.convo.room}/typing`, { method: "POST", body: { nick: name } }).catch(() => {});
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) {
      showComposerError("Write a message first.", input);
      return;
    }
    if (new TextEncoder().encode(text).length > 4000) {
      showComposerError("Messages are limited to 4000 bytes.", input);
      return;
    }
    $("#composer-error").textContent = "";
    input.value = "";
    input.style.height = "auto";
    state.lastTypingSent = 0;
    const convo = state.convo;
    const sent = convo.kind === "room" ? await sendToRoom(convo.room, text) : await sendToAgent(convo.key, text);
    if (sent === false && !input.value) input.value = text;
    input.focus();
  });
  $("#chat-search").addEventListener("input", () => renderMessages(false));
  $("#chat-filter").addEventListener("change", () => renderMessages(false));
  $("#join-room").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("#join-room-name");
    const name = field.value.trim().toLowerCase();
    if (!ROOM_RE.test(name)) {
      field.setAttribute("aria-invalid", "true");
      $("#join-room-error").textContent = "A room name is 1 to 32 characters: a–z, 0–9 and -.";
      field.focus();
      return;
    }
    field.removeAttribute("aria-invalid");
    $("#join-room-error").textContent = "";
    field.value = "";
    room(name);
    navigate(`#/chat/room/${name}`);
  });
}

// ------------------------------------------------------------------ tools: schema forms

function schemaType(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (Array.isArray(schema.enum) && schema.enum.length) return "enum";
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type) return type;
  if (schema.properties) return "object";
  if (schema.items) return "array";
  return null;
}

function describe(field, schema) {
  const ids = [];
  if (schema && schema.description) {
    const id = uid("desc");
    field.desc = h("p", { class: "desc", id }, schema.description);
    ids.push(id);
  }
  const errorId = uid("err");
  field.error = h("p", { class: "error-text", id: errorId });
  ids.push(errorId);
  return ids.join(" ");
}

function markInvalid(control, errorNode, message) {
  errorNode.textContent = message || "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
  return message ? control : null;
}

/**
 * A form field for a JSON schema. Returns { node, read } where read() gives
 * { present, value, invalid } and shows the field's validation message.
 */
function schemaField(schema, name, required, labelText) {
  schema = schema || {};
  const type = schemaType(schema);
  const id = uid("f");
  const title = labelText || schema.title || name;
  const label = () =>
    h("label", { for: id }, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
  const field = {};
  const describedBy = describe(field, schema);
  const common = { id, name, "aria-describedby": describedBy, "aria-required": required ? "true" : null };

  if (type === "enum") {
    const select = h(
      "select",
      common,
      required && schema.default !== undefined ? null : h("option", { value: "" }, required ? "Choose…" : "(none)"),
      ...schema.enum.map((value, i) => h("option", { value: String(i) }, typeof value === "string" ? value : JSON.stringify(value))),
    );
    if (schema.default !== undefined) {
      const index = schema.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(schema.default));
      if (index >= 0) select.value = String(index);
    }
    return {
      node: h("div", { class: "field" }, label(), select, field.desc, field.error),
      read() {
        if (select.value === "") {
          return required
            ? { invalid: markInvalid(select, field.error, "Choose a value.") }
            : (markInvalid(select, field.error, ""), { present: false });
        }
        markInvalid(select, field.error, "");
        return { present: true, value: schema.enum[Number(select.value)] };
      },
    };
  }

  if (type === "boolean") {
    const box = h("input", { ...common, type: "checkbox", checked: schema.default === true });
    return {
      node: h(
        "div",
        { class: "field checkbox" },
        box,
        h("label", { for: id }, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
        field.desc,
        field.error,
      ),
      read() {
        return box.checked || required ? { present: true, value: box.checked } : { present: false };
      },
    };
  }

  if (type === "number" || type === "integer") {
    const input = h("input", {
      ...common,
      type: "number",
      step: type === "integer" ? "1" : "any",
      min: schema.minimum,
      max: schema.maximum,
      inputmode: type === "integer" ? "numeric" : "decimal",
    });
    if (typeof schema.default === "number") input.value = String(schema.default);
    return {
      node: h("div", { class: "field" }, label(), input, field.desc, field.error),
      read() {
        const raw = input.value.trim();
        if (raw === "") {
          if (input.validity && input.validity.badInput) {
            return { invalid: markInvalid(input, field.error, "Enter a number.") };
          }
          return required
            ? { invalid: markInvalid(input, field.error, "This field is required.") }
            : (markInvalid(input, field.error, ""), { present: false });
        }
        const value = Number(raw);
        let message = "";
        if (!Number.isFinite(value)) message = "Enter a number.";
        else if (type === "integer" && !Number.isInteger(value)) message = "Enter a whole number.";
        else if (typeof schema.minimum === "number" && value < schema.minimum) message = `Must be at least ${schema.minimum}.`;
        else if (typeof schema.maximum === "number" && value > schema.maximum) message = `Must be at most ${schema.maximum}.`;
        if (message) return { invalid: markInvalid(input, field.error, message) };
        markInvalid(input, field.error, "");
        return { present: true, value };
      },
    };
  }

  if (type === "string") {
    const long = (schema.maxLength || 0) > 120 || /^(message|text|content|body|prompt|query|input)$/i.test(name);
    const input = long
      ? h("textarea", { ...common, rows: "3", maxlength: schema.maxLength })
      : h("input", { ...common, type: schema.format === "uri" ? "url" : "text", maxlength: schema.maxLength, spellcheck: "false" });
    if (typeof schema.default === "string") input.value = schema.default;
    return {
      node: h("div", { class: "field" }, label(), input, field.desc, field.error),
      read() {
        const value = input.value;
        if (value === "") {
          return required
            ? { invalid: markInvalid(input, field.error, "This field is required.") }
            : (markInvalid(input, field.error, ""), { present: false });
        }
        let message = "";
        if (typeof schema.minLength === "number" && value.length < schema.minLength) {
          message = `Must be at least ${plural(schema.minLength, "character", "characters")}.`;
        } else if (typeof schema.maxLength === "number" && value.length > schema.maxLength) {
          message = `Must be at most ${plural(schema.maxLength, "character", "characters")}.`;
        } else if (schema.pattern) {
          try {
            if (!new RegExp(schema.pattern, "u").test(value)) message = `Must match the pattern ${schema.pattern}.`;
          } catch {
            // A pattern the browser cannot compile is left to the agent.
          }
        }
        if (message) return { invalid: markInvalid(input, field.error, message) };
        markInvalid(input, field.error, "");
        return { present: true, value };
      },
    };
  }

  if (type === "object" && schema.properties && Object.keys(schema.properties).length) {
    const requiredNames = new Set(Array.isArray(schema.required) ? schema.required : []);
    const children = Object.entries(schema.properties).map(([key, sub]) => [key, schemaField(sub, key, requiredNames.has(key))]);
    return {
      node: h(
        "fieldset",
        { class: "field", "aria-describedby": describedBy },
        h("legend", {}, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
        field.desc,
        ...children.map(([, child]) => child.node),
        field.error,
      ),
      read() {
        const value = {};
        let invalid = null;
        for (const [key, child] of children) {
          const result = child.read();
          if (result.invalid) invalid = invalid || result.invalid;
          else if (result.present) value[key] = result.value;
        }
        if (invalid) return { invalid };
        if (!required && Object.keys(value).length === 0) return { present: false };
        return { present: true, value };
      },
    };
  }

  const itemType = type === "array" ? schemaType(schema.items) : null;
  if (type === "array" && ["string", "number", "integer", "boolean", "enum"].includes(itemType)) {
    const items = h("div", { class: "array-items" });
    const rows = [];
    const addRow = () => {
      const child = schemaField(schema.items, name, true, `${title} item ${rows.length + 1}`);
      const row = h("div", { class: "array-item" }, child.node);
      const entry = { child, row };
      row.append(
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              rows.splice(rows.indexOf(entry), 1);
              row.remove();
              add.focus();
            },
          },
          "Remove",
        ),
      );
      rows.push(entry);
      items.append(row);
      return child;
    };
    const add = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () => {
          addRow();
          const last = rows[rows.length - 1].row.querySelector("input, select, textarea");
          if (last) last.focus();
        },
      },
      `Add ${title} item`,
    );
    const group = h(
      "fieldset",
      { class: "field", "aria-describedby": describedBy },
      h("legend", {}, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      field.desc,
      items,
      h("div", {}, add),
      field.error,
    );
    return {
      node: group,
      read() {
        const value = [];
        let invalid = null;
        for (const { child } of rows) {
          const result = child.read();
          if (result.invalid) invalid = invalid || result.invalid;
          else if (result.present) value.push(result.value);
        }
        if (invalid) return { invalid };
        let message = "";
        if (required && value.length === 0 && !(schema.minItems === 0)) message = "Add at least one item.";
        else if (typeof schema.minItems === "number" && value.length < schema.minItems) message = `Add at least ${plural(schema.minItems, "item", "items")}.`;
        else if (typeof schema.maxItems === "number" && value.length > schema.maxItems) message = `At most ${plural(schema.maxItems, "item", "items")}.`;
        field.error.textContent = message;
        if (message) return { invalid: add };
        if (!required && value.length === 0) return { present: false };
        return { present: true, value };
      },
    };
  }

  // Anything else (free-form objects, arrays of objects, unions): JSON text.
  const area = h("textarea", { ...common, rows: "3", spellcheck: "false", class: "mono" });
  const expected = type === "array" ? "a JSON array" : type === "object" ? "a JSON object" : "JSON";
  if (schema.default !== undefined) area.value = pretty(schema.default);
  area.placeholder = type === "array" ? "[]" : type === "object" ? "{}" : "JSON value";
  return {
    node: h("div", { class: "field" }, label(), area, h("p", { class: "desc" }, `Enter ${expected}.`), field.desc, field.error),
    read() {
      const raw = area.value.trim();
      if (raw === "") {
        return required
          ? { invalid: markInvalid(area, field.error, "This field is required.") }
          : (markInvalid(area, field.error, ""), { present: false });
      }
      let value;
      try {
        value = JSON.parse(raw);
      } catch {
        return { invalid: markInvalid(area, field.error, `Enter ${expected}; this is not valid JSON.`) };
      }
      if (type === "array" && !Array.isArray(value)) return { invalid: markInvalid(area, field.error, "Enter a JSON array.") };
      if (type === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
        return { invalid: markInvalid(area, field.error, "Enter a JSON object.") };
      }
      markInvalid(area, field.error, "");
      return { present: true, value };
    },
  };
}

/** The root form of a tool: its inputSchema's properties as fields; arguments are an object. */
function argumentsForm(schema, submitLabel, onSubmit) {
  const properties = schema && schema.properties ? schema.properties : {};
  const requiredNames = new Set(schema && Array.isArray(schema.required) ? schema.required : []);
  const fields = Object.entries(properties).map(([key, sub]) => [key, schemaField(sub, key, requiredNames.has(key))]);
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const formError = h("p", { class: "error-text", role: "alert" });
  const form = h(
    "form",
    { class: "schema-form", novalidate: true },
    fields.length ? null : h("p", { class: "hint" }, "No arguments."),
    ...fields.map(([, field]) => field.node),
    requiredNames.size ? h("p", { class: "hint" }, h("span", { "aria-hidden": "true" }, "* "), "Required fields are marked with an asterisk.") : null,
    h("div", { class: "form-actions" }, button),
    formError,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const args = {};
    let invalid = null;
    for (const [key, field] of fields) {
      const result = field.read();
      if (result.invalid) invalid = invalid || result.invalid;
      else if (result.present) args[key] = result.value;
    }
    if (invalid) {
      formError.textContent = "Some fields need attention.";
      invalid.focus();
      return;
    }
    formError.textContent = "";
    button.disabled = true;
    const original = button.textContent;
    button.textContent = "Calling…";
    try {
      await onSubmit(args);
    } finally {
      button.disabled = false;
      button.textContent = original;
    }
  });
  return form;
}

// ------------------------------------------------------------------ tools: results

function contentNodes(content) {
  return (content || []).map((item) => {
    if (!item || typeof item !== "object") return h("pre", {}, pretty(item));
    if (item.type === "text") return h("pre", { class: "result-text" }, item.text);
    if (item.type === "image" && typeof item.data === "string" && /^image\/(png|jpeg|gif|webp)$/.test(item.mimeType || "")) {
      return h("img", { src: `data:${item.mimeType};base64,${item.data}`, alt: "Image returned by the tool" });
    }
    if (item.type === "resource" && item.resource) {
      return h("pre", {}, item.resource.text !== undefined ? item.resource.text : pretty(item.resource));
    }
    return h("pre", {}, pretty(item));
  });
}

function resultCard(card) {
  const ok = !card.error && !(card.result && card.result.isError);
  const node = h(
    "details",
    { class: `result${ok ? "" : " is-error"}`, open: card.open, dataset: { testid: "result" } },
    h(
      "summary",
      {},
      h("span", { class: `badge ${ok ? "ok" : "err"}` }, ok ? "ok" : "error"),
      h("span", { class: "mono" }, card.title),
      card.elapsed !== undefined ? h("span", { class: "hint" }, `${Number(card.elapsed).toFixed(1)} ms`) : null,
      h("time", { class: "hint", datetime: new Date(card.time).toISOString() }, clock(card.time)),
    ),
    h(
      "div",
      { class: "result-body" },
      card.args !== undefined ? [h("h4", {}, "Arguments"), h("pre", {}, pretty(card.args))] : null,
      card.error
        ? [h("h4", {}, "Error"), h("pre", {}, `${card.error.message}${card.error.code ? ` (${card.error.code})` : ""}`)]
        : [
            h("h4", {}, "Result"),
            ...card.render(card.result),
            h("details", {}, h("summary", {}, "Raw JSON"), h("pre", {}, pretty(card.result))),
          ],
    ),
  );
  node.addEventListener("toggle", () => {
    card.open = node.open;
  });
  return node;
}

function resultsList(key) {
  const cards = state.results.get(key) || [];
  return h("div", { class: "results", "aria-label": "Results" }, ...cards.map(resultCard));
}

async function runCall(resultKey, container, title, args, call, render) {
  const cards = state.results.get(resultKey) || [];
  state.results.set(resultKey, cards);
  const card = { title, args, time: Date.now(), open: true, render };
  try {
    const response = await call();
    card.result = response && response.result !== undefined && response.elapsed_ms !== undefined ? response.result : response;
    if (response && response.elapsed_ms !== undefined) card.elapsed = response.elapsed_ms;
  } catch (error) {
    card.error = error;
  }
  for (const old of cards) old.open = false;
  cards.unshift(card);
  if (cards.length > 20) cards.length = 20;
  container.replaceChildren(...cards.map(resultCard));
  const ok = !card.error && !(card.result && card.result.isError);
  announce(ok ? `${title} finished.` : `${title} failed: ${card.error ? card.error.message : "the tool reported an error"}`);
}

// ------------------------------------------------------------------ tools: view

function renderToolPicker() {
  const select = $("#tool-agent");
  const groups = [];
  if (state.directory) {
    const nodes = (state.directory.nodes || []).slice().sort((a, b) => (b.local ? 1 : 0) - (a.local ? 1 : 0));
    for (const node of nodes) {
      if (!(node.agents || []).length) continue;
      groups.push(
        h(
          "optgroup",
          { label: `${node.local ? "This node" : "Node"} ${shortId(node.node_id)}${node.online ? "" : " (offline)"}` },
          ...node.agents.map((agent) =>
            h("option", { value: agentKey(node.node_id, agent.agent_id) }, `${agent.name || agent.agent_id} (${agent.agent_id})`),
          ),
        ),
      );
    }
  }
  select.replaceChildren(h("option", { value: "" }, groups.length ? "Choose an agent…" : "No agents"), ...groups);
  select.value = state.toolAgent && findAgent(state.toolAgent) ? state.toolAgent : "";
  select.disabled = !groups.length;
}

async function loadListing(key) {
  const [nodeId, agentId] = key.split("/");
  try {
    const listing = await api(`/api/agents/${encodeURIComponent(nodeId)}/${encodeURIComponent(agentId)}`);
    state.listings.set(key, listing);
  } catch (error) {
    state.listings.set(key, { error });
  }
  if (state.view === "tools" && state.toolAgent === key) renderTools();
}

function renderTools() {
  renderToolPicker();
  const body = $("#tools-body");
  if (!state.directory) {
    body.replaceChildren(
      state.directoryError
        ? directoryNotice(false)
        : h("p", { class: "hint" }, "Loading the agent directory…"),
    );
    return;
  }
  if (!state.toolAgent || !findAgent(state.toolAgent)) {
    body.replaceChildren(
      h(
        "div",
        { class: "empty" },
        h("strong", {}, agentCount() ? "Choose an agent" : "No agents on the mesh yet"),
        agentCount() ? "Pick an agent above or in the sidebar to see its tools, resources and prompts." : "Agents appear here as soon as a node announces them.",
      ),
    );
    return;
  }
  const key = state.toolAgent;
  const listing = state.listings.get(key);
  if (!listing) {
    body.replaceChildren(h("p", { class: "hint", role: "status" }, `Asking ${agentLabel(key)} for its tools…`));
    loadListing(key);
    return;
  }
  if (listing.error) {
    body.replaceChildren(
      h(
        "div",
        { class: "notice error", role: "status" },
        h("span", {}, `${agentLabel(key)} could not be listed: ${listing.error.message}`),
        h("button", { type: "button", class: "secondary", onclick: () => { state.listings.delete(key); renderTools(); } }, "Retry"),
      ),
    );
    return;
  }
  const [nodeId, agentId] = key.split("/");
  const base = `/api/agents/${encodeURIComponent(nodeId)}/${encodeURIComponent(agentId)}`;
  const tools = listing.tools || [];
  const resources = listing.resources || [];
  const prompts = listing.prompts || [];

  const toolCards = tools.map((tool) => {
    const resultKey = `${key}/tool/${tool.name}`;
    const results = resultsList(resultKey);
    const form = argumentsForm(tool.inputSchema || {}, `Call ${tool.name}`, (args) =>
      runCall(
        resultKey,
        results,
        tool.name,
        args,
        () => api(`${base}/tools/${encodeURIComponent(tool.name)}`, { method: "POST", body: args }),
        (result) => [
          ...contentNodes(result && result.content),
          result && result.structuredContent !== undefined
            ? [h("h4", {}, "Structured content"), h("pre", {}, pretty(result.structuredContent))]
            : null,
        ],
      ),
    );
    const params = Object.keys((tool.inputSchema && tool.inputSchema.properties) || {}).length;
    return h(
      "details",
      { class: "card tool", dataset: { tool: tool.name }, open: (state.results.get(resultKey) || []).length ? true : null },
      h(
        "summary",
        {},
        h("span", { class: "tool-name" }, tool.name),
        h("span", { class: "badge neutral" }, plural(params, "argument", "arguments")),
        tool.description ? h("span", { class: "tool-desc" }, tool.description) : null,
      ),
      h("div", { class: "tool-body" }, form, results),
    );
  });

  const resourceCards = resources.map((resource) => {
    const resultKey = `${key}/resource/${resource.uri}`;
    const results = resultsList(resultKey);
    const read = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          read.disabled = true;
          await runCall(
            resultKey,
            results,
            resource.uri,
            { uri: resource.uri },
            () => api(`${base}/resources/read`, { method: "POST", body: { uri: resource.uri } }),
            (result) =>
              ((result && result.contents) || []).map((c) =>
                c.text !== undefined
                  ? h("pre", {}, c.text)
                  : h("p", {}, `${c.mimeType || "binary"} content, ${(c.blob || "").length} base64 characters`),
              ),
          );
          read.disabled = false;
        },
      },
      `Read ${resource.name || resource.uri}`,
    );
    return h(
      "div",
      { class: "card plain-card" },
      h("div", { class: "row" }, h("span", { class: "tool-name mono" }, resource.uri), resource.mimeType ? h("span", { class: "badge neutral" }, resource.mimeType) : null),
      resource.description ? h("p", { class: "tool-desc" }, resource.description) : null,
      h("div", {}, read),
      results,
    );
  });

  const promptCards = prompts.map((prompt) => {
    const resultKey = `${key}/prompt/${prompt.name}`;
    const results = resultsList(resultKey);
    const schema = { type: "object", properties: {}, required: [] };
    for (const arg of prompt.arguments || []) {
      schema.properties[arg.name] = { type: "string", description: arg.description };
      if (arg.required) schema.required.push(arg.name);
    }
    const form = argumentsForm(schema, `Get ${prompt.name}`, (args) =>
      runCall(
        resultKey,
        results,
        prompt.name,
        args,
        () => api(`${base}/prompts/${encodeURIComponent(prompt.name)}`, { method: "POST", body: { arguments: args } }),
        (result) =>
          ((result && result.messages) || []).map((m) =>
            h("pre", {}, `${m.role}: ${m.content && m.content.type === "text" ? m.content.text : pretty(m.content)}`),
          ),
      ),
    );
    return h(
      "details",
      { class: "card tool", dataset: { prompt: prompt.name } },
      h("summary", {}, h("span", { class: "tool-name" }, prompt.name), prompt.description ? h("span", { class: "tool-desc" }, prompt.description) : null),
      h("div", { class: "tool-body" }, form, results),
    );
  });

  const section = (title, items, emptyText) => [
    h("h2", { class: "section-title" }, title, h("span", { class: "count" }, String(items.length))),
    items.length ? items : h("p", { class: "hint" }, emptyText),
  ];
  const found = findAgent(key);
  body.replaceChildren(
    ...[
      found && !found.node.online
        ? h("p", { class: "notice", role: "status" }, "This agent's node is offline; calls will fail until it is back.")
        : null,
      section("Tools", toolCards, "This agent has no tools."),
      section("Resources", resourceCards, "This agent has no resources."),
      section("Prompts", promptCards, "This agent has no prompts."),
    ]
      .flat(Infinity)
      .filter(Boolean),
  );
}

function setupTools() {
  $("#tool-agent").addEventListener("change", (event) => {
    const key = event.target.value;
    if (key) navigate(`#/tools/${key}`);
  });
}

// ------------------------------------------------------------------ network view

function fact(term, value, id) {
  return [h("dt", {}, term), h("dd", { id }, value)];
}

function renderNetwork() {
  const body = $("#network-body");
  if (!$("#net-cards", body)) {
    const copy = h(
      "button",
      {
        type: "button",
        class: "secondary copy",
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(state.node ? state.node.node_id : "");
            announce("Node id copied.");
          } catch {
            announce("The browser did not allow copying.");
          }
        },
      },
      "Copy",
    );
    body.replaceChildren(
      h(
        "div",
        { class: "net-grid", id: "net-cards" },
        h(
          "section",
          { class: "card", "aria-labelledby": "net-node-h" },
          h("h2", { id: "net-node-h" }, "This node"),
          h(
            "dl",
            { class: "facts" },
            h("dt", {}, "Node id"),
            h("dd", {}, h("span", { class: "idline", id: "fact-id" }), copy),
            fact("QUIC (UDP)", "", "fact-quic"),
            fact("HTTP", "", "fact-http"),
            fact("Version", "", "fact-version"),
            fact("Uptime", "", "fact-uptime"),
            fact("Peers", "", "fact-peers"),
          ),
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "net-enc-h" },
          h("h2", { id: "net-enc-h" }, "Encryption"),
          h(
            "dl",
            { class: "facts" },
            fact("Transport", "QUIC (RFC 9000), every stream encrypted"),
            fact("Handshake", "TLS 1.3 with raw public keys (RFC 7250)"),
            fact("Identity", "Ed25519: a node id is its public key"),
            fact("Peers", "Both sides authenticated in the handshake; a wrong key is refused"),
            fact("Gossip", "Every message signed by its origin node"),
          ),
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "net-gossip-h" },
          h("h2", { id: "net-gossip-h" }, "Gossip"),
          h(
            "dl",
            { class: "facts" },
            fact("Active view", "", "fact-active"),
            fact("Passive view", "", "fact-passive"),
            fact("Delivered", "", "fact-delivered"),
            fact("Broadcast", "", "fact-broadcasts"),
            fact("Misbehaviour", "", "fact-misbehaviours"),
          ),
        ),
      ),
      h("h2", { class: "section-title", id: "peers-h" }, "Peers ", h("span", { class: "count", id: "peer-count" }, "0")),
      h("div", { id: "net-peers", class: "table-wrap" }),
    );
  }
  updateNodeFacts();
  renderPeers();
  loadPeers();
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node && node.textContent !== text) node.textContent = text;
}

function updateNodeFacts() {
  const node = state.node;
  if (!node) return;
  setText("fact-id", node.node_id);
  setText("fact-quic", (node.listen_addrs || []).join(", ") || "—");
  setText("fact-http", node.http_addr || "—");
  setText("fact-version", node.version);
  setText("fact-uptime", uptime(node.uptime_secs));
  setText("fact-peers", `${node.peer_count} connected, ${node.known_peer_count} known`);
  const gossip = node.gossip || {};
  setText("fact-delivered", String(gossip.delivered ?? 0));
  setText("fact-broadcasts", String(gossip.broadcasts ?? 0));
  setText("fact-misbehaviours", String(gossip.misbehaviours ?? 0));
}

function trustText(peer) {
  const trust = peer.trust !== undefined ? peer.trust : peer.trust_level;
  if (trust === undefined || trust === null) return "—";
  if (typeof trust === "object") {
    const level = trust.level ?? trust.name ?? "";
    const score = trust.score;
    return [level, typeof score === "number" ? `score ${score.toFixed(2)}` : ""].filter(Boolean).join(" · ") || pretty(trust);
  }
  const score = peer.trust_score;
  return typeof score === "number" ? `${trust} · score ${score.toFixed(2)}` : String(trust);
}

function connectionText(peer) {
  if (!peer.connected) return h("span", { class: "state down" }, h("span", { class: "presence", "aria-hidden": "true" }), "Not connected");
  const relayed = peer.relayed === true || peer.via_relay === true || peer.path === "relay";
  return h(
    "span",
    {},
    h("span", { class: "state up" }, h("span", { class: "presence online", "aria-hidden": "true" }), "Connected"),
    h("br"),
    h("span", { class: "hint" }, [peer.direction, relayed ? "relayed (still end-to-end)" : "direct"].filter(Boolean).join(" · ")),
  );
}

function renderPeers() {
  const container = document.getElementById("net-peers");
  if (!container) return;
  const list = state.peers;
  const active = new Set((list && list.active_view) || []);
  const passive = new Set((list && list.passive_view) || []);
  setText("fact-active", list ? plural(active.size, "neighbour", "neighbours") : "—");
  setText("fact-passive", list ? plural(passive.size, "peer", "peers") : "—");
  const peers = (list && list.peers) || [];
  setText("peer-count", String(peers.length));
  if (!peers.length) {
    container.replaceChildren(
      h(
        "div",
        { class: "empty" },
        h("strong", {}, list ? "No peers yet" : "Loading peers…"),
        list ? "Start another node with --bootstrap pointing at this one, or let mDNS find nodes on the LAN." : "",
      ),
    );
    return;
  }
  const rows = peers.map((peer) => {
    const view = peer.view || (active.has(peer.node_id) ? "active" : passive.has(peer.node_id) ? "passive" : null);
    return h(
      "tr",
      { dataset: { peer: peer.node_id } },
      h(
        "td",
        { "data-label": "Peer" },
        h("span", { class: "idline", title: peer.node_id }, shortId(peer.node_id)),
        peer.bootstrap ? [" ", h("span", { class: "tag" }, "bootstrap")] : null,
      ),
      h("td", { "data-label": "Addresses", class: "mono" }, (peer.addresses || []).join(", ") || "—"),
      h("td", { "data-label": "Connection" }, connectionText(peer)),
      h("td", { "data-label": "Gossip view" }, view ? (view === "active" ? "Active (neighbour)" : "Passive (stand-by)") : "—"),
      h("td", { "data-label": "Trust" }, trustText(peer)),
      h("td", { "data-label": "Last seen" }, peer.connected ? "now" : ago(peer.last_seen_unix_ms)),
      h("td", { "data-label": "Failed dials" }, String(peer.failures ?? 0)),
    );
  });
  container.replaceChildren(
    h(
      "table",
      { class: "peers", "aria-labelledby": "peers-h" },
      h(
        "thead",
        {},
        h("tr", {}, ...["Peer", "Addresses", "Connection", "Gossip view", "Trust", "Last seen", "Failed dials"].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, ...rows),
    ),
  );
}

// ------------------------------------------------------------------ live events

let events = null;

function connectEvents() {
  if (!window.EventSource) return;
  events = new EventSource("/api/events");
  events.addEventListener("hello", () => {
    const reconnect = state.everLive;
    state.live = true;
    state.everLive = true;
    renderHeader();
    if (reconnect) refreshAll();
  });
  events.addEventListener("error", () => {
    state.live = false;
    renderHeader();
  });
  const on = (name, handler) =>
    events.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      handler(data);
    });
  on("chat", onChatEvent);
  on("typing", onTypingEvent);
  on("receipt", onReceiptEvent);
  on("peers", (list) => {
    state.peers = list;
    if (state.node) {
      state.node.peer_count = (list.peers || []).filter((p) => p.connected).length;
      renderHeader();
    }
    if (state.view === "network") renderPeers();
  });
  on("agents", (directory) => {
    if (directory && Array.isArray(directory.nodes)) {
      state.directory = directory;
      state.directoryError = null;
      renderSidebar();
      if (state.view === "tools") renderTools();
    } else {
      loadAgents();
    }
  });
  on("resync", () => refreshAll());
}

function refreshAll() {
  loadStatus();
  loadPeers();
  loadAgents();
  loadRooms();
  for (const [name, entry] of state.rooms) {
    if (entry.loaded) loadRoom(name);
  }
}

// ------------------------------------------------------------------ start

function setup() {
  setupTheme();
  setupComposer();
  setupTools();
  $("#menu-toggle").addEventListener("click", () => {
    if ($("#sidebar").classList.contains("open")) closeDrawer(true);
    else openDrawer();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer(true);
  });
  window.addEventListener("hashchange", applyRoute);
  room("lobby");
  applyRoute();
  connectEvents();
  loadStatus();
  loadPeers();
  loadRooms();
  loadAgents();
  window.setInterval(loadStatus, 10000);
  window.setInterval(() => {
    if (!state.live) loadPeers();
  }, 10000);
  window.setInterval(loadAgents, 30000);
  window.setInterval(renderTyping, 1000);
}

setup();
