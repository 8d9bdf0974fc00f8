import { createHash } from "node:crypto"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

// The chat page of `GET /`: one static document, its style and script inline (no build step, nothing fetched
// from elsewhere). It holds no data: what it shows comes from `/v1/models`, `/v1/chat/completions` and
// `/health`, asked with the key the user types, and is always written as text (`textContent`), never as HTML.

const style = `
:root { color-scheme: light dark; --fg: #1d2026; --muted: #5f6672; --bg: #f6f7f9; --card: #fff; --line: #d9dde3;
  --accent: #2f6fde; --bad: #c62828; --bad-bg: #fdecea; --warn: #a15c00; --warn-bg: #fff4e0; --ok: #2e7d32;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa1ab; --bg: #15171a; --card: #1e2125;
  --line: #343840; --accent: #6fa0ff; --bad: #ff6b6b; --bad-bg: #3a1d1d; --warn: #ffb454; --warn-bg: #3a2b14;
  --ok: #6bd46f; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; padding: 10px 16px;
  border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 17px; margin: 0; margin-right: auto; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 12px 0 4px; }
form { margin: 0; }
input, select, textarea, button { font: inherit; color: inherit; }
input, select, textarea { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px; }
button { border: 1px solid var(--line); border-radius: 6px; padding: 5px 12px; background: var(--card); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
#notice { margin: 0; padding: 8px 16px; background: var(--warn-bg); color: var(--warn); border-bottom: 1px solid var(--line); }
#notice.bad { background: var(--bad-bg); color: var(--bad); }
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(420px, 1fr); gap: 16px; padding: 16px;
  height: calc(100vh - 60px); }
@media (max-width: 900px) { main { grid-template-columns: 1fr; height: auto; } }
section, aside { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px;
  min-height: 0; display: flex; flex-direction: column; }
aside { overflow: auto; }
.bar { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; }
.bar label { margin-right: auto; }
#log { list-style: none; margin: 0; padding: 0; flex: 1; overflow: auto; min-height: 200px; }
.msg { margin: 0 0 12px; }
.who { font-size: 12px; color: var(--muted); margin-bottom: 2px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.user .text { background: var(--bg); border-radius: 8px; padding: 6px 10px; display: inline-block; }
.reasoning { border-left: 3px solid var(--line); padding: 2px 0 2px 10px; margin: 4px 0; color: var(--muted); }
.reasoning summary { cursor: pointer; font-size: 13px; }
.reasoning .text { font-size: 13px; }
.meta { font-size: 12px; color: var(--muted); }
.meta.bad { color: var(--bad); }
#compose { display: flex; gap: 8px; align-items: flex-end; margin-top: 8px; }
#prompt { flex: 1; resize: vertical; min-height: 44px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.server { font-family: var(--mono); font-size: 12px; white-space: nowrap; }
td.error { overflow-wrap: anywhere; }
tr.open td { background: var(--bad-bg); color: var(--bad); }
tr.half-open td { background: var(--warn-bg); color: var(--warn); }
.state::before { content: "\\25CF\\00A0"; }
tr.closed .state::before { color: var(--ok); }
.badge { font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px; background: var(--bg); }
.badge.ok { color: var(--ok); }
.badge.degraded { color: var(--warn); background: var(--warn-bg); }
.badge.down { color: var(--bad); background: var(--bad-bg); }
.note { color: var(--muted); font-size: 12px; }
`

const script = `
"use strict";
(() => {
  const KEY = "easychat.gateway.key";
  const MODEL = "easychat.gateway.model";
  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const storage = (() => { try { return window.sessionStorage; } catch { return undefined; } })();
  const keyOf = () => (storage && storage.getItem(KEY)) || "";
  const headers = (extra) => {
    const key = keyOf();
    return Object.assign(key ? { authorization: "Bearer " + key } : {}, extra || {});
  };
  const notice = $("notice");
  const say = (text, bad) => {
    notice.textContent = text;
    notice.className = bad ? "bad" : "";
    notice.hidden = text === "";
  };
  // The message of an OpenAI error body, or the status line.
  const errorOf = async (response) => {
    let message = "";
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") message = body.error.message;
    } catch {}
    return response.status + ": " + (message || response.statusText || "request failed");
  };
  const unauthorized = (text) =>
    say(text + (keyOf() ? " (the key of this tab was refused)" : " — enter the gateway's key above."), true);

  // Key: kept in this tab's sessionStorage only, never shown again.
  const keyInput = $("key");
  const keyState = () => {
    keyInput.value = "";
    keyInput.placeholder = keyOf() ? "a key is set for this tab" : "gateway key, if it asks for one";
    $("forget").disabled = !keyOf();
  };
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    // What an Authorization header can carry (the gateway's rule for keys); the key itself is never repeated.
    if (key !== "" && !/^[\x21-\x7e]+$/.test(key)) return say("A key is printable ASCII without spaces.", true);
    if (key !== "" && storage) storage.setItem(KEY, key);
    keyState();
    say("");
    loadModels();
    pollHealth();
  });
  $("forget").addEventListener("click", () => {
    if (storage) storage.removeItem(KEY);
    keyState();
    loadModels();
    pollHealth();
  });

  // Models
  const select = $("model");
  // A newer question (a key just given) wins over an older answer still on its way.
  let modelsAsked = 0;
  const loadModels = async () => {
    const asked = ++modelsAsked;
    try {
      const response = await fetch("./v1/models", { headers: headers(), cache: "no-store" });
      const body = response.ok ? await response.json() : undefined;
      if (asked !== modelsAsked) return;
      if (response.status === 401) return unauthorized(await errorOf(response));
      if (!response.ok) return say("Models: " + (await errorOf(response)), true);
      const ids = (Array.isArray(body.data) ? body.data : []).map((m) => m && m.id).filter((id) => typeof id === "string");
      const chosen = select.value || (storage && storage.getItem(MODEL)) || "";
      select.replaceChildren(...ids.map((id) => el("option", "", id)));
      if (ids.includes(chosen)) select.value = chosen;
      if (notice.className === "bad") say("");
    } catch (error) {
      if (asked === modelsAsked) say("Models: the gateway cannot be reached (" + error.message + ")", true);
    }
  };
  select.addEventListener("change", () => storage && storage.setItem(MODEL, select.value));

  // Chat
  const log = $("log");
  const prompt = $("prompt");
  const send = $("send");
  const stop = $("stop");
  let history = [];
  let running;
  const scroll = () => { log.scrollTop = log.scrollHeight; };
  const addUser = (content) => {
    const item = el("li", "msg user");
    item.append(el("div", "who", "You"), el("div", "text", content));
    log.append(item);
  };
  const addAssistant = (model) => {
    const item = el("li", "msg assistant");
    const reasoning = el("details", "reasoning");
    reasoning.hidden = true;
    reasoning.append(el("summary", "", "Reasoning"));
    const reasoningText = el("div", "text reasoning-text");
    reasoning.append(reasoningText);
    const answer = el("div", "text answer");
    const meta = el("div", "meta");
    const who = el("div", "who", model || "assistant");
    item.append(who, reasoning, answer, meta);
    log.append(item);
    const reasoningNode = reasoningText.appendChild(document.createTextNode(""));
    const answerNode = answer.appendChild(document.createTextNode(""));
    return {
      reasoning(text) {
        if (reasoning.hidden) { reasoning.hidden = false; reasoning.open = true; }
        reasoningNode.appendData(text);
      },
      answer(text) {
        // The reasoning folds away once the answer starts; a click opens it again.
        if (answerNode.length === 0 && !reasoning.hidden) reasoning.open = false;
        answerNode.appendData(text);
      },
      text: () => answerNode.data,
      // The model that answered, as the upstream names it.
      model(name) { if (who.textContent !== name) who.textContent = name; },
      meta(text, bad) { meta.textContent = text; meta.className = bad ? "meta bad" : "meta"; }
    };
  };
  // The events of an SSE body: { event, data } once each blank line ends one.
  async function* events(body, signal) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.search(/\\r?\\n\\r?\\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\\r?\\n\\r?\\n/, "");
          let event = "message";
          const data = [];
          for (const line of block.split(/\\r?\\n/)) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          }
          if (data.length > 0) yield { event, data: data.join("\\n") };
        }
      }
    } finally {
      if (signal.aborted) reader.cancel().catch(() => {});
      else reader.releaseLock();
    }
  }
  const chat = async (content) => {
    const model = select.value;
    addUser(content);
    history.push({ role: "user", content });
    const reply = addAssistant(model);
    scroll();
    const controller = new AbortController();
    running = controller;
    send.disabled = true;
    stop.disabled = false;
    let finish = "";
    let failed = "";
    try {
      const response = await fetch("./v1/chat/completions", {
        method: "POST",
        headers: headers({ "content-type": "application/json" }),
        body: JSON.stringify({ model, messages: history, stream: true }),
        signal: controller.signal
      });
      if (!response.ok || response.body === null) {
        failed = await errorOf(response);
        if (response.status === 401) unauthorized(failed);
      } else {
        read: for await (const { event, data } of events(response.body, controller.signal)) {
          if (data === "[DONE]") break;
          let chunk;
          try { chunk = JSON.parse(data); } catch { continue; }
          if (event === "error" || (chunk && chunk.error)) {
            const error = chunk && chunk.error ? chunk.error : chunk;
            failed = (error && typeof error.message === "string" && error.message) || "the stream ended with an error";
            break read;
          }
          const choice = chunk && Array.isArray(chunk.choices) ? chunk.choices.find((c) => (c.index || 0) === 0) : undefined;
          if (chunk && typeof chunk.model === "string" && chunk.model !== "") reply.model(chunk.model);
          if (!choice) continue;
          const delta = choice.delta || {};
          const thought = typeof delta.reasoning_content === "string" ? delta.reasoning_content : delta.reasoning;
          if (typeof thought === "string" && thought !== "") reply.reasoning(thought);
          if (typeof delta.content === "string" && delta.content !== "") reply.answer(delta.content);
          if (typeof delta.refusal === "string" && delta.refusal !== "") reply.answer(delta.refusal);
          if (choice.finish_reason) finish = choice.finish_reason;
          scroll();
        }
      }
    } catch (error) {
      failed = controller.signal.aborted ? "" : "the connection failed (" + error.message + ")";
    } finally {
      running = undefined;
      send.disabled = false;
      stop.disabled = true;
    }
    if (controller.signal.aborted) reply.meta("stopped");
    else if (failed) reply.meta(failed, true);
    else reply.meta(finish ? "finish: " + finish : "");
    // A stopped reply stays in the conversation as far as it went; a failed request leaves it.
    if (reply.text() !== "") history.push({ role: "assistant", content: reply.text() });
    else if (failed) history.pop();
    scroll();
  };
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const content = prompt.value.trim();
    if (content === "" || running) return;
    prompt.value = "";
    chat(content);
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("compose").requestSubmit();
    }
  });
  stop.addEventListener("click", () => running && running.abort());
  $("clear").addEventListener("click", () => {
    if (running) running.abort();
    history = [];
    log.replaceChildren();
  });

  // Health: the pools' breakers, asked every few seconds while the tab is visible.
  const pools = $("pools");
  const healthNote = $("health-note");
  const dash = (v) => (v === null || v === undefined ? "\\u2014" : String(v));
  const table = (servers) => {
    const t = el("table");
    const head = el("tr");
    for (const name of ["Server", "State", "Estimate", "Fail rate", "Fails", "Last error"]) head.append(el("th", "", name));
    t.appendChild(el("thead")).append(head);
    const body = t.appendChild(el("tbody"));
    for (const s of Array.isArray(servers) ? servers : []) {
      const row = el("tr", String(s.state));
      row.dataset.server = String(s.server);
      row.dataset.state = String(s.state);
      row.append(
        el("td", "server", String(s.server)),
        el("td", "state", String(s.state)),
        el("td", "num", typeof s.estimateMs === "number" ? s.estimateMs + " ms" : dash(s.estimateMs)),
        el("td", "num", typeof s.failureRate === "number" ? Math.round(s.failureRate * 100) + "%" : dash(s.failureRate)),
        el("td", "num", dash(s.failures)),
        el("td", "error", s.lastError ? String(s.lastError) : "")
      );
      body.append(row);
    }
    return t;
  };
  const badge = (status) => el("span", "badge " + String(status), String(status));
  const renderHealth = (health) => {
    $("status").replaceChildren(badge(health.status));
    if (Array.isArray(health.routes)) {
      pools.replaceChildren(
        ...health.routes.flatMap((route) => {
          const title = el("h3", "", String(route.name) + " ");
          title.append(badge(route.status));
          const models = Array.isArray(route.models) && route.models.length > 0 ? route.models.join(", ") : "";
          return [title, ...(models ? [el("div", "note", models)] : []), table(route.servers)];
        })
      );
    } else {
      pools.replaceChildren(table(health.servers));
    }
  };
  let timer;
  let healthAsked = 0;
  const pollHealth = async () => {
    clearTimeout(timer);
    const asked = ++healthAsked;
    if (!document.hidden) {
      let note;
      let health;
      try {
        const response = await fetch("./health", { headers: headers(), cache: "no-store" });
        // 503 (every circuit open) still carries the report.
        if (!response.ok && response.status !== 503) {
          note = "Health: " + (await errorOf(response));
        } else {
          health = await response.json();
          note = "updated " + new Date().toLocaleTimeString();
        }
      } catch (error) {
        note = "Health: the gateway cannot be reached (" + error.message + ")";
      }
      if (asked !== healthAsked) return;
      if (health) renderHealth(health);
      else { pools.replaceChildren(); $("status").replaceChildren(); }
      healthNote.textContent = note;
    }
    if (asked === healthAsked) timer = setTimeout(pollHealth, 2000);
  };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) pollHealth(); });

  keyState();
  loadModels();
  pollHealth();
})();
`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`

/** The page's HTML. */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>easychat gateway</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header>
<h1>easychat gateway</h1>
<form id="key-form" autocomplete="off">
<label>Key <input id="key" type="password" autocomplete="off" spellcheck="false"></label>
<button type="submit">Use key</button>
<button type="button" id="forget">Forget</button>
</form>
</header>
<p id="notice" role="alert" hidden></p>
<main>
<section id="chat" aria-label="Chat">
<div class="bar">
<label>Model <select id="model"></select></label>
<button type="button" id="clear">New chat</button>
</div>
<ol id="log" aria-live="polite"></ol>
<form id="compose">
<textarea id="prompt" rows="2" placeholder="Message (Enter sends, Shift+Enter: new line)"></textarea>
<button type="submit" id="send" class="primary">Send</button>
<button type="button" id="stop" disabled>Stop</button>
</form>
</section>
<aside id="health" aria-label="Pool health">
<h2>Pool health <span id="status"></span></h2>
<div id="pools"></div>
<p id="health-note" class="note"></p>
</aside>
</main>
<script>${script}</script>
</body>
</html>
`

/**
 * Inline style and script are allowed by their hashes alone; requests go to this origin only; no frames,
 * forms, plugins or base URL.
 */
export const contentSecurityPolicy = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(style)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

/** `GET /`: the page, the same bytes for everyone. */
export const response = HttpServerResponse.text(html, {
  contentType: "text/html; charset=utf-8",
  headers: {
    "content-security-policy": contentSecurityPolicy,
    // Revalidated on each visit, so a new version of the gateway serves its own page.
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY"
  }
})
