// The demo page (development mode): a creator goes live, a viewer buys coins
// and sends gifts over the viewer WebSocket, and the overlay plays beside it.
// Tokens come from POST /v1/dev/token and coins from POST /v1/dev/purchase,
// which exist only when the server runs with GIFTING_DEV=1. The creator's
// tools (step 4) use the public API: blocks, hidden events, moderators, the
// server-sent event feed and webhook subscriptions.

import { avatar, compact, effectEmoji, el, giftEmoji } from "./art.js";

const $ = (id) => document.getElementById(id);
const STORE = "gifting.demo.v1";
const PEOPLE = [["alice", "Alice"], ["bob", "Bob"], ["chen", "Chen"], ["dana", "Dana"], ["eli", "Eli ✨"]];
const COUNTS = [1, 5, 10, 99];

const demo = {
  catalog: null,
  creator: null, // {user, name, token}
  viewer: null, // {user, name, token}
  stream: null, // {stream, title, overlay_url, overlay_key}
  count: 1,
};
window.__demo = demo;

function persist() {
  const keep = {
    creator: demo.creator && { user: demo.creator.user, name: demo.creator.name },
    viewer: demo.viewer && { user: demo.viewer.user, name: demo.viewer.name },
    stream: demo.stream,
  };
  sessionStorage.setItem(STORE, JSON.stringify(keep));
}

// ---------------------------------------------------------------------------- HTTP

async function api(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.message || `HTTP ${res.status}`);
    err.code = data.code || String(res.status);
    throw err;
  }
  return data;
}

async function signIn(user, name, creator) {
  const { token } = await api("POST", "/v1/dev/token", { body: { user, name: name || user, creator } });
  return { user, name: name || user, token };
}

// ---------------------------------------------------------------------------- toasts

const FRIENDLY = {
  insufficient_funds: "Not enough coins — buy a package first",
  stream_not_live: "The stream is not live",
  budget_exceeded: "Monthly budget reached",
  rate_limited: "Slow down a little",
  unauthorized: "Sign in again",
  blocked: "You are blocked in this stream",
};

function toast(text, kind = "info") {
  const node = el("div", { class: `toast ${kind}`, text });
  $("toasts").append(node);
  setTimeout(() => node.classList.add("leaving"), 3200);
  setTimeout(() => node.remove(), 3700);
}

function fail(err) {
  toast(FRIENDLY[err.code] || err.message || String(err), "error");
}

// ---------------------------------------------------------------------------- creator

function renderCreator() {
  const signed = Boolean(demo.creator);
  $("creator-form").hidden = signed;
  $("creator-signed").hidden = !signed;
  if (signed) {
    $("creator-signed").replaceChildren(avatar({ id: demo.creator.user, name: demo.creator.name }, "sm"),
      el("b", { text: demo.creator.name }), el("span", { class: "small", text: " creator" }),
      el("button", { class: "link", type: "button", text: "switch", onclick: () => { demo.creator = null; persist(); renderCreator(); } }));
  }
  const live = Boolean(demo.stream);
  $("live-form").hidden = !signed || live;
  $("stream-box").hidden = !live;
  if (live) {
    const link = new URL(demo.stream.overlay_url, location.href);
    const local = `${location.origin}${link.pathname}${link.search}`;
    $("stream-title").textContent = demo.stream.title;
    $("stream-id").textContent = demo.stream.stream;
    $("overlay-url").value = local;
    $("open-overlay").href = local;
    const frame = $("overlay-frame");
    const src = `${link.pathname}${link.search}&sound=0`;
    if (frame.getAttribute("src") !== src) frame.setAttribute("src", src);
    frame.hidden = false;
    $("screen-empty").hidden = true;
    tools.render();
  } else {
    tools.render();
    $("overlay-frame").hidden = true;
    $("overlay-frame").removeAttribute("src");
    $("screen-empty").hidden = false;
  }
}

async function creatorSignIn(user, name) {
  demo.creator = await signIn(user, name, true);
  persist();
  renderCreator();
}

async function goLive(title) {
  const data = await api("POST", "/v1/streams", { token: demo.creator.token, body: { title } });
  demo.stream = { stream: data.stream, title: data.title, overlay_url: data.overlay_url, overlay_key: data.overlay_key };
  persist();
  renderCreator();
  room.connect();
  toast(`You are live: ${data.title}`);
}

// ---------------------------------------------------------------------------- viewer

function renderPeople() {
  $("people").replaceChildren(...PEOPLE.map(([user, name]) => el("button", {
    class: `chip ${demo.viewer && demo.viewer.user === user ? "on" : ""}`, type: "button",
    onclick: () => viewerSignIn(user, name).catch(fail),
  }, avatar({ id: user, name }, "sm"), name)));
}

async function viewerSignIn(user, name) {
  demo.viewer = await signIn(user, name, false);
  $("viewer-user").value = user;
  $("viewer-name").value = name;
  persist();
  renderPeople();
  $("wallet").hidden = false;
  await refreshWallet();
  room.connect();
}

async function refreshWallet() {
  if (!demo.viewer) return;
  const wallet = await api("GET", "/v1/wallet", { token: demo.viewer.token });
  setBalance(wallet.coins);
}

function setBalance(coins) {
  const node = $("balance");
  const text = Number(coins).toLocaleString("en-US");
  if (node.textContent !== text) {
    node.textContent = text;
    node.classList.remove("tick");
    void node.offsetWidth;
    node.classList.add("tick");
  }
}

async function buy(pkg) {
  if (!demo.viewer) { toast("Sign in as a viewer first", "error"); return; }
  const res = await api("POST", "/v1/dev/purchase", { token: demo.viewer.token, body: { package: pkg.id } });
  setBalance(res.balance);
  toast(`+${res.coins.toLocaleString("en-US")} coins`);
}

// ---------------------------------------------------------------------------- the viewer WebSocket

const room = {
  ws: null,
  key: "",
  attempt: 0,
  timer: 0,
  counter: 0,
  pending: new Map(), // id -> frame: sent again with the same id after a reconnect

  connect() {
    if (!demo.viewer || !demo.stream) return;
    const key = `${demo.viewer.user}@${demo.stream.stream}`;
    if (this.ws && this.key === key) return;
    this.close();
    this.key = key;
    const url = new URL("/v1/ws/viewer", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("stream", demo.stream.stream);
    url.searchParams.set("token", demo.viewer.token);
    const ws = new WebSocket(url, "gifting.json.v1");
    this.ws = ws;
    setConn("connecting");
    ws.onopen = () => {
      this.attempt = 0;
      setConn("online");
      for (const frame of this.pending.values()) ws.send(frame);
    };
    ws.onmessage = (e) => this.onFrame(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      setConn("offline");
      if (e.code === 1000 || e.code === 1008) {
        if (e.code === 1000) onEnded();
        return;
      }
      const ms = Math.min(8000, 400 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.timer = setTimeout(() => { this.key = ""; this.connect(); }, ms);
    };
  },

  close() {
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
    setConn("offline");
  },

  send(message) {
    if (!demo.viewer) { toast("Sign in as a viewer first", "error"); return; }
    if (!demo.stream) { toast("Go live first (step 1)", "error"); return; }
    this.counter += 1;
    const id = `d${Date.now().toString(36)}-${this.counter}`;
    const frame = JSON.stringify({ ...message, id });
    this.pending.set(id, frame);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    else this.connect();
  },

  onFrame(msg) {
    if (msg.op === "ack") {
      this.pending.delete(msg.id);
      if (typeof msg.balance === "number") setBalance(msg.balance);
      if (typeof msg.share === "number") toast(`You won 🪙 ${msg.share} from the treasure box`);
    } else if (msg.op === "error") {
      if (msg.id) this.pending.delete(msg.id);
      fail(msg);
    } else if (msg.op === "batch") {
      msg.events.forEach(addToFeed);
    } else if (msg.op === "event") {
      addToFeed(msg);
    }
  },
};

function setConn(state) {
  const node = $("conn");
  node.textContent = state;
  node.className = `conn ${state}`;
}

function onEnded() {
  toast("The stream ended");
  demo.stream = null;
  persist();
  renderCreator();
}

// ---------------------------------------------------------------------------- the room feed

function addToFeed(ev) {
  let line = null;
  const who = ev.sender ? el("b", { text: ev.sender.name }) : null;
  switch (ev.kind) {
    case "gift":
      line = [giftEmoji(ev.gift.id, ev.gift.tier), " ", who, " sent ", el("b", { text: ev.gift.name }),
        ev.count > 1 ? ` ×${ev.count}` : "", ev.gift.streakable ? el("span", { class: "pill", text: `combo ${ev.combo}` }) : "",
        el("span", { class: "coins", text: `🪙 ${compact(ev.coins)}` })];
      break;
    case "streak_end":
      line = ["🏁 ", who, ` finished a streak of ${ev.combo}`];
      break;
    case "effect":
      line = [effectEmoji(ev.effect.id), " ", who, " triggered ", el("b", { text: ev.effect.name })];
      break;
    case "highlight":
      line = ["📌 ", who, ": ", el("span", { class: "hl", text: ev.text })];
      break;
    case "comment":
      line = ["💬 ", who, ": ", el("span", { text: ev.text })];
      break;
    case "goal":
      line = ev.goal ? [`🎯 goal ${compact(ev.goal.progress)} / ${compact(ev.goal.target)}`] : ["🎯 goals cleared"];
      break;
    case "goal_reached":
      line = [ev.step === null ? `🏆 goal ${ev.goal} reached` : `🎉 goal ${ev.goal}: step ${compact(ev.step)} reached`];
      break;
    case "hype":
      line = [`🔥 hype level ${ev.level} (${compact(ev.progress)} / ${compact(ev.target)})`];
      break;
    case "hype_ended":
      line = [`🔥 the hype ended at level ${ev.level}`];
      break;
    case "box_dropped":
      line = ["🎁 ", who, ` dropped a treasure box: 🪙 ${compact(ev.coins)} for ${ev.winners}, opens in ${Math.max(0, Math.round((ev.opens_at - ev.ts) / 1000))} s `,
        el("button", { class: "link claim", type: "button", text: "claim", dataset: { box: ev.box },
          onclick: () => room.send({ op: "claim", box: ev.box }) })];
      break;
    case "box_opened":
      line = ["🔓 a treasure box is open: claim it within 30 s"];
      break;
    case "box_claimed":
      line = ["🪙 ", el("b", { text: ev.name }), ` won ${compact(ev.share)} from a treasure box`];
      break;
    case "box_closed":
      line = [`📦 a treasure box closed: ${compact(ev.claimed)} claimed by ${ev.claims}, ${compact(ev.returned)} back to its dropper`];
      break;
    case "stream_ended":
      line = ["🔴 the stream ended"];
      break;
    case "hidden":
      takeDown(ev.target);
      return;
    default:
      return; // leaderboards are shown by the overlay
  }
  const feed = $("feed");
  const item = el("li", { class: `kind-${ev.kind}`, dataset: { event: ev.event || "" } }, ...line, ...moderate(ev));
  feed.prepend(item);
  while (feed.children.length > 60) feed.lastElementChild.remove();
}

// The creator's buttons on a feed line: hide a comment, block its sender.
function moderate(ev) {
  if (!demo.creator || !demo.stream || !ev.sender || ev.sender.id === demo.creator.user) return [];
  const out = [];
  if (ev.kind === "comment" || ev.kind === "highlight") {
    out.push(el("button", { class: "link mod", type: "button", text: "hide", onclick: () => tools.hide(ev.event).catch(fail) }));
  }
  out.push(el("button", { class: "link mod", type: "button", text: "block", onclick: () => tools.block(ev.sender.id).catch(fail) }));
  return out;
}

function takeDown(event) {
  for (const li of $("feed").querySelectorAll("li")) {
    if (li.dataset.event === event) {
      li.classList.add("hidden-line");
      li.replaceChildren("🚫 hidden by the creator");
    }
  }
}

// ---------------------------------------------------------------------------- creator tools

const tools = {
  sse: null,
  shown: false,

  path(suffix = "") {
    return `/v1/streams/${encodeURIComponent(demo.stream.stream)}${suffix}`;
  },

  render() {
    const on = Boolean(demo.creator && demo.stream);
    $("tools-card").hidden = !on;
    if (!on) { this.stopFeed(); this.shown = false; return; }
    if (!this.shown) {
      this.shown = true;
      this.refresh().catch(fail);
    }
  },

  async refresh() {
    const token = demo.creator.token;
    const [blocks, mods] = await Promise.all([
      api("GET", this.path("/blocks"), { token }),
      api("GET", "/v1/moderators", { token }),
    ]);
    $("blocks").replaceChildren(...(blocks.blocks.length ? blocks.blocks.map((b) => el("li", { dataset: { user: b.user } },
      avatar({ id: b.user, name: b.user }, "sm"), el("b", { text: b.user }), el("span", { class: "small", text: b.scope === "creator" ? "every stream" : "this stream" }),
      el("button", { class: "link", type: "button", text: "unblock", onclick: () => this.unblock(b.user).catch(fail) }))) : [el("li", { class: "small", text: "nobody" })]));
    $("mods").replaceChildren(...mods.moderators.map((m) => el("li", { dataset: { user: m.user } },
      avatar({ id: m.user, name: m.user }, "sm"), el("b", { text: m.user }),
      el("button", { class: "link", type: "button", text: "remove", onclick: () => this.removeModerator(m.user).catch(fail) }))));
  },

  async block(user) {
    await api("POST", this.path("/blocks"), { token: demo.creator.token, body: { user, scope: "stream" } });
    toast(`${user} is blocked in this stream`);
    await this.refresh();
  },

  async unblock(user) {
    await api("DELETE", this.path(`/blocks/${encodeURIComponent(user)}`), { token: demo.creator.token });
    toast(`${user} is unblocked`);
    await this.refresh();
  },

  async hide(event) {
    await api("POST", this.path(`/events/${encodeURIComponent(event)}/hide`), { token: demo.creator.token });
  },

  async addModerator(user) {
    await api("POST", "/v1/moderators", { token: demo.creator.token, body: { user } });
    await this.refresh();
  },

  async removeModerator(user) {
    await api("DELETE", `/v1/moderators/${encodeURIComponent(user)}`, { token: demo.creator.token });
    await this.refresh();
  },

  // The open event feed: the overlay's events over server-sent events (EventSource
  // resumes by itself with Last-Event-ID after a drop).
  toggleFeed() {
    if (this.sse) { this.stopFeed(); return; }
    const url = `${this.path("/events")}?key=${encodeURIComponent(demo.stream.overlay_key)}`;
    const source = new EventSource(url);
    this.sse = source;
    $("sse-toggle").textContent = "Stop";
    const show = (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch { data = {}; }
      const who = data.sender ? ` ${data.sender.name}` : "";
      const list = $("sse");
      list.prepend(el("li", { dataset: { kind: e.type }, text: `${e.type}${who}  id=${e.lastEventId}` }));
      while (list.children.length > 40) list.lastElementChild.remove();
    };
    for (const kind of ["gift", "streak_end", "effect", "comment", "highlight", "hidden", "goal", "leaderboard", "stream_ended", "snapshot", "cursor_expired"]) {
      source.addEventListener(kind, show);
    }
    source.onmessage = show;
  },

  stopFeed() {
    if (this.sse) this.sse.close();
    this.sse = null;
    $("sse-toggle").textContent = "Watch the feed";
  },

  async subscribe(url) {
    const sub = await api("POST", "/v1/webhook-subscriptions", { token: demo.creator.token, body: { url, kinds: ["gift", "highlight"] } });
    this.hook = sub.id;
    $("hook").replaceChildren("Subscribed ", el("code", { text: sub.id }), " · secret ", el("code", { text: sub.secret }),
      " ", el("button", { class: "link", type: "button", text: "deliveries", onclick: () => this.deliveries().catch(fail) }));
  },

  async deliveries() {
    const data = await api("GET", `/v1/webhook-subscriptions/${encodeURIComponent(this.hook)}/deliveries`, { token: demo.creator.token });
    const rows = data.deliveries || [];
    $("deliveries").replaceChildren(...(rows.length ? rows.map((d) => el("li", { dataset: { kind: d.kind, status: String(d.status ?? "") },
      text: `${d.kind} ${d.event} → ${d.status ?? d.error ?? "…"} (attempt ${d.attempt})` }))
      : [el("li", { class: "small", text: "no delivery yet" })]));
  },
};

// ---------------------------------------------------------------------------- the catalog

function renderCatalog() {
  const cat = demo.catalog;
  $("packages").replaceChildren(...cat.packages.map((p) => el("button", {
    class: "pkg", type: "button", onclick: () => buy(p).catch(fail),
  }, el("b", { text: `🪙 ${p.coins.toLocaleString("en-US")}` }),
  el("span", { text: new Intl.NumberFormat("en-US", { style: "currency", currency: p.price.currency }).format(p.price.amount / 100) }))));

  $("counts").replaceChildren(...COUNTS.map((n) => el("button", {
    class: `seg ${demo.count === n ? "on" : ""}`, type: "button",
    onclick: () => { demo.count = n; renderCatalog(); },
  }, `×${n}`)));

  $("gifts").replaceChildren(...cat.gifts.map((g) => el("button", {
    class: `gift tier-${g.tier}`, type: "button", title: `${g.name} · ${g.coins} coins`,
    dataset: { gift: g.id },
    onclick: () => room.send({ op: "gift", gift: g.id, count: g.streakable ? demo.count : 1 }),
  }, el("span", { class: "emoji", text: giftEmoji(g.id, g.tier) }), el("span", { class: "name", text: g.name }),
  el("span", { class: "price", text: `🪙 ${compact(g.coins)}` }))));

  $("effects").replaceChildren(...cat.effects.map((e) => el("button", {
    class: "effect", type: "button", onclick: () => room.send({ op: "effect", effect: e.id }),
  }, effectEmoji(e.id), " ", e.name, el("span", { class: "price", text: ` 🪙 ${compact(e.coins)}` }))));

  const select = $("highlight");
  if (!select.options.length) {
    select.append(el("option", { value: "", text: "Free comment" }),
      ...cat.highlights.map((h) => el("option", { value: h.id, text: `📌 Pin ${Math.round(h.pin_ms / 1000)} s · 🪙 ${h.coins}` })));
  }
}

// ---------------------------------------------------------------------------- wiring

async function quickStart() {
  if (!demo.creator) await creatorSignIn("carol", "Carol");
  if (!demo.stream) await goLive($("title").value || "Friday night gaming");
  if (!demo.viewer) await viewerSignIn("alice", "Alice");
  const wallet = await api("GET", "/v1/wallet", { token: demo.viewer.token });
  if (wallet.coins < 5000) await buy(demo.catalog.packages.find((p) => p.coins >= 7000) || demo.catalog.packages.at(-1));
}

function wire() {
  $("creator-form").addEventListener("submit", (e) => {
    e.preventDefault();
    creatorSignIn($("creator-user").value.trim(), $("creator-name").value.trim()).catch(fail);
  });
  $("live-form").addEventListener("submit", (e) => { e.preventDefault(); goLive($("title").value.trim()).catch(fail); });
  $("viewer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    viewerSignIn($("viewer-user").value.trim(), $("viewer-name").value.trim()).catch(fail);
  });
  $("goal-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const target = Number.parseInt($("goal-target").value, 10);
    api("PUT", `/v1/streams/${encodeURIComponent(demo.stream.stream)}/goal`, {
      token: demo.creator.token, body: { target, gift: null },
    }).then(() => toast(`Goal set: ${target.toLocaleString("en-US")} coins`)).catch(fail);
  });
  $("end").addEventListener("click", () => {
    api("POST", `/v1/streams/${encodeURIComponent(demo.stream.stream)}/end`, { token: demo.creator.token })
      .then(onEnded).catch(fail);
  });
  $("copy").addEventListener("click", () => {
    navigator.clipboard.writeText($("overlay-url").value).then(() => toast("Overlay link copied"), () => $("overlay-url").select());
  });
  $("drop-box").addEventListener("click", () => room.send({ op: "box", coins: 500, winners: 5, opens_in_s: 10 }));
  $("comment-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("comment").value.trim();
    if (!text) return;
    const highlight = $("highlight").value;
    room.send(highlight ? { op: "comment", text, highlight } : { op: "comment", text });
    $("comment").value = "";
  });
  $("quick").addEventListener("click", () => quickStart().catch(fail));
  $("mod-form").addEventListener("submit", (e) => {
    e.preventDefault();
    tools.addModerator($("mod-user").value.trim()).catch(fail);
  });
  $("sse-toggle").addEventListener("click", () => tools.toggleFeed());
  $("hook-form").addEventListener("submit", (e) => {
    e.preventDefault();
    tools.subscribe($("hook-url").value.trim()).catch(fail);
  });
}

function fitPreview() {
  const screen = document.querySelector(".screen");
  const frame = $("overlay-frame");
  const fit = () => frame.style.setProperty("--k", String(screen.clientWidth / 1920));
  new ResizeObserver(fit).observe(screen);
  fit();
}

async function main() {
  wire();
  fitPreview();
  renderPeople();
  demo.catalog = await api("GET", "/v1/catalog");
  renderCatalog();
  let kept = {};
  try { kept = JSON.parse(sessionStorage.getItem(STORE) || "{}"); } catch { kept = {}; }
  if (kept.creator) await creatorSignIn(kept.creator.user, kept.creator.name).catch(() => null);
  if (kept.stream) demo.stream = kept.stream;
  renderCreator();
  if (kept.viewer) await viewerSignIn(kept.viewer.user, kept.viewer.name).catch(() => null);
}

main().catch(fail);
