// The broadcaster overlay: an OBS browser source that follows one stream's room.
//
// URL: /overlay/<stream>?key=<overlay key>[&widgets=alerts,big,goal,top,comments,effects,hype,chat,weekly,boxes]
//      [&min_coins=N][&sound=0|1][&volume=0..1][&big_ms=N][&max_alerts=N][&scale=F][&status=0|1]
//
// It connects to /v1/ws/overlay, and on every drop (or a page reload) reconnects
// with the cursor of the last event it handled (kept in sessionStorage), so it
// shows what it missed and nothing twice: events at or below the last seq and
// ids already handled are skipped. Text from users only ever goes through
// textContent.

import { avatar, compact, effectEmoji, el, giftEmoji } from "./art.js";

// ---------------------------------------------------------------------------- options

const params = new URLSearchParams(location.search);
const stream = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const overlayKey = params.get("key") || "";
const ALL_WIDGETS = ["alerts", "big", "goal", "top", "comments", "effects", "hype", "boxes"];

function intParam(name, fallback, min, max) {
  const raw = params.get(name);
  const v = raw === null ? NaN : Number.parseInt(raw, 10);
  return Number.isFinite(v) ? Math.min(Math.max(v, min), max) : fallback;
}

const options = {
  widgets: new Set(
    (params.get("widgets") || ALL_WIDGETS.join(","))
      .split(",").map((w) => w.trim().toLowerCase()).filter(Boolean),
  ),
  minCoins: intParam("min_coins", 0, 0, 1e9),
  sound: params.get("sound") === "1",
  volume: Math.min(Math.max(Number(params.get("volume") ?? 0.4) || 0, 0), 1),
  bigMs: intParam("big_ms", 0, 300, 60000),
  maxAlerts: intParam("max_alerts", 5, 1, 12),
  scale: Math.min(Math.max(Number(params.get("scale") || 1) || 1, 0.5), 3),
  status: params.get("status") !== "0",
};
const on = (widget) => options.widgets.has(widget);

document.documentElement.style.setProperty("--scale", String(options.scale));
const $ = (id) => document.getElementById(id);
const stage = $("stage");

// ---------------------------------------------------------------------------- state kept across reloads

// Two entries per stream: the cursor (written with every event, tiny) and the
// rest (recent ids, queued big gifts, pinned comments; written when they change).
const STORE = `gifting.overlay.v1.${stream}`;
const CURSOR_STORE = `${STORE}.cursor`;
const REMEMBER_IDS = 500;

function loadJson(key) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key) || "null");
    if (value && typeof value === "object") return value;
  } catch { /* a corrupt entry: start over */ }
  return {};
}

const saved = loadJson(STORE);
const savedCursor = loadJson(CURSOR_STORE);
const state = {
  cursor: typeof savedCursor.cursor === "string" ? savedCursor.cursor : null,
  seq: Number.isInteger(savedCursor.seq) ? savedCursor.seq : 0,
};
const seenIds = new Set(Array.isArray(saved.ids) ? saved.ids.slice(-REMEMBER_IDS) : []);
let saveTimer = 0;

function saveCursor() {
  try {
    sessionStorage.setItem(CURSOR_STORE, JSON.stringify({ cursor: state.cursor, seq: state.seq }));
  } catch { /* storage disabled: the cursor of this page still works */ }
}

function saveNow() {
  clearTimeout(saveTimer);
  saveTimer = 0;
  saveCursor();
  try {
    sessionStorage.setItem(STORE, JSON.stringify({
      ids: Array.from(seenIds).slice(-REMEMBER_IDS),
      big: bigQueue,
      pins: Array.from(pins.values()).map((p) => ({ ev: p.ev, until: p.until })),
      pinQueue: pinQueue.map((p) => ({ ev: p.ev, until: p.until })),
      boxes: Array.from(boxes.values()).map((b) => ({ ev: b.ev, claims: b.claims, opened: b.opened, closed: b.closed })),
    }));
  } catch { /* storage full or disabled: this page goes on without it */ }
}

function saveSoon() {
  if (!saveTimer) saveTimer = setTimeout(saveNow, 250);
}

function remember(id) {
  seenIds.add(id);
  if (seenIds.size > REMEMBER_IDS * 2) {
    const keep = Array.from(seenIds).slice(-REMEMBER_IDS);
    seenIds.clear();
    keep.forEach((k) => seenIds.add(k));
  }
}

// The debug hook the browser tests read; `gifting:shown` fires for each gift shown.
const debug = {
  shown: [],
  big: [],
  received: 0,
  connected: false,
  reconnects: 0,
  options,
  get cursor() { return state.cursor; },
  get seq() { return state.seq; },
  get queue() { return bigQueue.length; },
  get playing() { return playing ? playing.event : null; },
  get pins() { return Array.from(pins.keys()); },
  get pinQueue() { return pinQueue.map((p) => p.ev.event); },
};
window.__overlay = debug;

function markShown(ev) {
  debug.shown.push(ev.event);
  window.dispatchEvent(new CustomEvent("gifting:shown", { detail: { event: ev.event, kind: ev.kind } }));
}

// ---------------------------------------------------------------------------- sound

let audio = null;
let lastChime = 0;

function chime(tier) {
  if (!options.sound) return;
  const now = performance.now();
  if (tier < 3 && now - lastChime < 140) return;
  lastChime = now;
  try {
    audio = audio || new AudioContext();
    const notes = tier >= 3 ? [523.25, 659.25, 783.99, 1046.5] : tier === 2 ? [659.25, 987.77] : [880];
    notes.forEach((freq, i) => {
      const t = audio.currentTime + i * 0.09;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "triangle";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(options.volume * 0.5, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.45);
      osc.connect(gain).connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.5);
    });
  } catch { /* no audio device: stay silent */ }
}

// ---------------------------------------------------------------------------- helpers

const full = (n) => (Number(n) || 0).toLocaleString("en-US");

function fadeOut(node, ms = 450) {
  if (!node || node.classList.contains("leaving")) return;
  node.classList.add("leaving");
  setTimeout(() => node.remove(), ms);
}

// The sender's badge (sender.badge: {id, name, tier}), drawn next to their name.
function badgeTag(sender) {
  const b = sender && sender.badge;
  if (!b || typeof b !== "object" || !b.id) return null;
  const tier = Math.min(Math.max(Number.parseInt(b.tier, 10) || 1, 1), 4);
  return el("span", { class: `badge btier-${tier}`, title: b.name || b.id,
    dataset: { badge: String(b.id) }, text: String(b.name || b.id) });
}

// The sender's gifter level (sender.level), a small pill after the badge; none at 0.
function levelTag(sender) {
  const level = Number.parseInt(sender && sender.level, 10) || 0;
  if (level < 1) return null;
  return el("span", { class: "lvl", title: `Level ${level}`, dataset: { level: String(level) }, text: `Lv ${level}` });
}

// What is drawn after a sender's name: their badge, then their level.
function senderMarks(sender) {
  const marks = [badgeTag(sender), levelTag(sender)].filter(Boolean);
  if (!marks.length) return null;
  const frag = document.createDocumentFragment();
  frag.append(...marks);
  return frag;
}

// Whom a gift was for, when not the host: "→ Bob" (a guest of a multi-guest LIVE).
function receiverTag(ev) {
  const r = ev.receiver;
  if (!r || !r.guest) return null;
  return el("span", { class: "to", dataset: { receiver: String(r.id) }, text: `→ ${r.name || r.id}` });
}

// A short alert: a gifter reached a level (level_up {user, name, level}).
function showLevelUp(ev) {
  const level = Number.parseInt(ev.level, 10) || 0;
  if (level < 1) return;
  const node = el("div", { class: "levelup", dataset: { event: ev.event, user: String(ev.user), level: String(level) } },
    el("span", { class: "art", text: "⬆" }),
    el("b", { text: String(ev.name || ev.user) }), " reached ",
    el("span", { class: "lvl", text: `Lv ${level}` }));
  $("alerts").append(node);
  setTimeout(() => fadeOut(node), 4000);
}

function restartAnimation(node, cls) {
  node.classList.remove(cls);
  void node.offsetWidth; // reflow, so the animation plays again
  node.classList.add(cls);
}

// ---------------------------------------------------------------------------- gift alerts (small gifts)

const alerts = new Map(); // key -> {node, combo, timer}
const ALERT_LINGER_MS = 7000;

function alertKey(ev) {
  return ev.gift.streakable ? `${ev.sender.id}\u0000${ev.gift.id}` : ev.event;
}

function dropAlert(key, delay = 0) {
  const a = alerts.get(key);
  if (!a) return;
  clearTimeout(a.timer);
  const go = () => {
    if (alerts.get(key) === a) alerts.delete(key);
    fadeOut(a.node);
  };
  if (delay) a.timer = setTimeout(go, delay); else go();
}

function showAlert(ev) {
  const key = alertKey(ev);
  const combo = ev.gift.streakable ? Math.max(ev.combo || 0, ev.count || 1) : ev.count || 1;
  let a = alerts.get(key);
  if (a && combo < a.combo) { dropAlert(key); a = undefined; } // a new streak: its end was missed
  const streakCoins = ev.gift.coins * combo;
  if (!a && Math.max(streakCoins, ev.coins || 0) < options.minCoins) return false;
  if (!a) {
    const node = el("div", { class: `alert tier-${Math.min(ev.gift.tier, 4)}`, dataset: {
      sender: ev.sender.id, gift: ev.gift.id,
    } },
      avatar(ev.sender),
      el("span", { class: "who" },
        el("span", { class: "line1" },
          el("span", { class: "name", text: ev.sender.name }), senderMarks(ev.sender)),
        el("span", { class: "what" }, "sent ", el("b", { text: ev.gift.name }))),
      el("span", { class: "art", text: giftEmoji(ev.gift.id, ev.gift.tier) }),
      el("span", { class: "combo" }, el("small", { text: "x" }), el("span", { class: "n" })));
    a = { node, combo: 0, timer: 0 };
    alerts.set(key, a);
    $("alerts").append(node);
    while (alerts.size > options.maxAlerts) dropAlert(alerts.keys().next().value);
  }
  a.combo = combo;
  const line1 = a.node.querySelector(".line1");
  const pill = levelTag(ev.sender); // a streak that crossed a level shows the new one
  line1.querySelector(".lvl")?.remove();
  if (pill) line1.append(pill);
  a.node.querySelector(".to")?.remove(); // the streak's latest receiver
  const to = receiverTag(ev);
  if (to) line1.querySelector(".name").after(to);
  a.node.dataset.event = ev.event;
  a.node.dataset.combo = String(combo);
  a.node.querySelector(".combo .n").textContent = String(combo);
  a.node.classList.toggle("multi", combo > 1);
  restartAnimation(a.node.querySelector(".combo"), "bump");
  clearTimeout(a.timer);
  a.timer = setTimeout(() => dropAlert(key), ALERT_LINGER_MS);
  return true;
}

function onStreakEnd(ev) {
  const key = `${ev.sender.id}\u0000${ev.gift.id}`;
  const a = alerts.get(key);
  if (!a) return;
  a.node.classList.add("ended");
  dropAlert(key, 1400);
}

// ---------------------------------------------------------------------------- big gifts (one at a time)

const bigQueue = Array.isArray(saved.big) ? saved.big.filter((e) => e && e.event) : [];
let playing = null;
const BIG_GAP_MS = 250;

function bigDuration(ev) {
  let ms = options.bigMs || (ev.gift.tier >= 4 ? 7000 : 4500);
  if (!options.bigMs && bigQueue.length > 3) ms = Math.max(1800, ms * 0.6); // catching up
  return ms;
}

function enqueueBig(ev) {
  bigQueue.push(ev);
  saveNow();
  playNextBig();
}

function playNextBig() {
  if (playing || !bigQueue.length) return;
  const ev = bigQueue.shift();
  playing = ev;
  saveNow();
  const ms = bigDuration(ev);
  const record = { event: ev.event, start: performance.now(), end: null, ms };
  debug.big.push(record);
  markShown(ev);
  chime(ev.gift.tier);

  const burst = el("div", { class: "burst" });
  const count = ev.gift.tier >= 4 ? 36 : 24;
  for (let i = 0; i < count; i += 1) {
    const p = el("i", { class: "spark" });
    p.style.setProperty("--a", `${(360 / count) * i + Math.random() * 8}deg`);
    p.style.setProperty("--d", `${30 + Math.random() * 22}vmin`);
    p.style.setProperty("--h", String(Math.floor(Math.random() * 360)));
    p.style.animationDelay = `${Math.random() * 250}ms`;
    burst.append(p);
  }
  const node = el("div", { class: `show tier-${Math.min(ev.gift.tier, 4)}`, dataset: {
    event: ev.event, gift: ev.gift.id,
  } },
    el("div", { class: "rays" }),
    burst,
    el("div", { class: "hero", text: giftEmoji(ev.gift.id, ev.gift.tier) }),
    el("div", { class: "banner" },
      avatar(ev.sender, "lg"),
      el("div", { class: "lines" },
        el("div", { class: "line1" },
          el("span", { class: "name", text: ev.sender.name }), receiverTag(ev),
          senderMarks(ev.sender)),
        el("div", { class: "what" }, "sent ", el("b", { text: ev.gift.name }),
          ev.count > 1 ? el("span", { class: "times", text: ` ×${ev.count}` }) : null)),
      el("div", { class: "coins", text: `🪙 ${compact(ev.coins || ev.gift.coins * (ev.count || 1))}` })));
  node.style.setProperty("--ms", `${ms}ms`);
  $("big").append(node);
  setTimeout(() => {
    record.end = performance.now();
    fadeOut(node, 400);
    playing = null;
    saveNow();
    setTimeout(playNextBig, BIG_GAP_MS);
  }, ms);
}

// ---------------------------------------------------------------------------- highlighted comments

// Pinned by tier (highlight.level: 1 = the cheapest tier). At most MAX_PINS show
// at once; a higher tier is never taken down for a lower one:
// - a free slot takes the newcomer;
// - slots full, a newcomer of a higher level than the lowest pin takes that
//   pin's place (the lowest level, then the one expiring soonest), and the pin
//   taken down goes back to the queue with the time it has left;
// - otherwise the newcomer waits in the queue.
// A pin's display time runs from its arrival, waiting included: when a slot
// frees, the queued pin of the highest level (the earliest come among equals)
// shows for what is left of its time, and one whose time ran out while it
// waited is dropped unshown. The queue holds at most MAX_QUEUED (beyond it the
// lowest, soonest-expiring entry is dropped).
const pins = new Map(); // event id -> {ev, until, node, timer}
let pinQueue = []; // [{ev, until}], in arrival order
const MAX_PINS = 3;
const MAX_QUEUED = 50;
const pinsShown = new Set(); // ids counted in debug.shown (a pin shown again is not a new one)

const pinLevel = (ev) => Number(ev.highlight && ev.highlight.level) || 0;
// Which of two pins yields a slot first: the lower level, then the one expiring soonest.
const weaker = (x, y) => pinLevel(x.ev) - pinLevel(y.ev) || x.until - y.until;

function pinComment(ev, until) {
  if (until - Date.now() <= 0 || pins.has(ev.event) || pinQueue.some((p) => p.ev.event === ev.event)) {
    return false;
  }
  if (pins.size >= MAX_PINS) {
    const lowest = Array.from(pins.values()).sort(weaker)[0];
    if (pinLevel(ev) <= pinLevel(lowest.ev)) {
      enqueuePin({ ev, until });
      saveNow();
      return false;
    }
    removePin(lowest.ev.event);
    enqueuePin({ ev: lowest.ev, until: lowest.until });
  }
  showPin(ev, until);
  saveNow();
  return true;
}

function enqueuePin(entry) {
  pinQueue.push(entry);
  if (pinQueue.length > MAX_QUEUED) {
    const drop = pinQueue.slice().sort(weaker)[0];
    pinQueue = pinQueue.filter((p) => p !== drop);
  }
}

function showPin(ev, until) {
  const left = until - Date.now();
  const tier = String(ev.highlight.tier || "");
  const node = el("article", { class: `pin ${tier.replace(/[^a-z0-9_-]/gi, "")}`, dataset: {
    event: ev.event, sender: ev.sender.id, level: String(pinLevel(ev)),
  } },
    el("header", {},
      avatar(ev.sender, "sm"),
      el("span", { class: "name", text: ev.sender.name }),
      senderMarks(ev.sender),
      el("span", { class: "paid", text: `🪙 ${compact(ev.coins || 0)}` })),
    el("p", { class: "text", text: ev.text }),
    el("div", { class: "timer" }));
  node.querySelector(".timer").style.animationDuration = `${left}ms`;
  $("pins").prepend(node);
  pins.set(ev.event, { ev, until, node, timer: setTimeout(() => unpin(ev.event), left) });
  if (!pinsShown.has(ev.event)) {
    pinsShown.add(ev.event);
    markShown(ev);
  }
}

function removePin(id) {
  const pin = pins.get(id);
  if (!pin) return;
  clearTimeout(pin.timer);
  pins.delete(id);
  fadeOut(pin.node);
}

function unpin(id) {
  removePin(id);
  promotePins();
  saveNow();
}

function promotePins() {
  const now = Date.now();
  pinQueue = pinQueue.filter((p) => p.until - now > 0); // ran out while waiting: dropped
  while (pins.size < MAX_PINS && pinQueue.length) {
    const best = pinQueue.reduce((a, b) => (pinLevel(b.ev) > pinLevel(a.ev) ? b : a));
    pinQueue = pinQueue.filter((p) => p !== best);
    showPin(best.ev, best.until);
  }
}

// ---------------------------------------------------------------------------- free comments (optional chat)

function showChat(ev) {
  const box = $("chat");
  box.append(el("div", { class: "line", dataset: { event: ev.event } },
    el("span", { class: "name", text: ev.sender.name }), senderMarks(ev.sender), " ",
    el("span", { text: ev.text })));
  while (box.children.length > 6) box.firstElementChild.remove();
}

// ---------------------------------------------------------------------------- effects

const EFFECT_GLYPHS = {
  heart_storm: ["💖", "💗", "💕", "❤️"],
  fireworks: ["✨", "💥", "🌟", "⭐"],
  spotlight: ["✨"],
};

function playEffect(ev) {
  const ms = Math.min(Math.max(ev.effect.duration_ms || 5000, 1500), 20000);
  const id = ev.effect.id;
  const layer = el("div", { class: `effect fx-${id.replace(/[^a-z0-9_-]/gi, "")}`, dataset: { event: ev.event } });
  const glyphs = EFFECT_GLYPHS[id];
  const n = id === "spotlight" ? 0 : 48;
  for (let i = 0; i < n; i += 1) {
    const p = el("i", { class: glyphs ? "glyph" : "flake", text: glyphs ? glyphs[i % glyphs.length] : null });
    p.style.left = `${Math.random() * 100}%`;
    p.style.animationDelay = `${Math.random() * Math.max(ms - 2500, 500)}ms`;
    p.style.animationDuration = `${2200 + Math.random() * 1800}ms`;
    p.style.setProperty("--h", String(Math.floor(Math.random() * 360)));
    p.style.setProperty("--drift", `${(Math.random() - 0.5) * 30}vw`);
    layer.append(p);
  }
  const label = el("div", { class: "fx-label" },
    el("span", { class: "art", text: effectEmoji(id) }),
    el("b", { text: ev.sender.name }), senderMarks(ev.sender), " triggered ",
    el("b", { text: ev.effect.name }));
  $("effects").prepend(layer);
  $("fx-labels").append(label); // labels of effects at once stack instead of overlapping
  setTimeout(() => { fadeOut(layer, 800); fadeOut(label, 800); }, ms);
}

// ---------------------------------------------------------------------------- goal and top gifters

// Up to three goals (ev.goals / snap.goals), each a bar with its step marks; an
// older server sends only `goal` (one goal, no steps). A goal_reached event
// lights its mark and plays a short celebration on that goal's bar.
let goalsShown = [];

function goalList(goals, legacy) {
  if (Array.isArray(goals)) return goals.filter((g) => g && g.target > 0).slice(0, 3);
  if (legacy && legacy.target) return [{ id: "goal", title: "", steps: [], steps_reached: [], ...legacy }];
  return [];
}

function goalLabel(g) {
  if (g.progress >= g.target) return "Goal reached!";
  return g.title || (g.gift ? `${full(g.target)} gifts` : "Stream goal");
}

// A goal's bar is built once and then updated in place (the fill glides, a
// celebration playing on it goes on); it is built again only when the goal's
// definition changed (another target, gift, title or steps).
function goalSignature(g) {
  return JSON.stringify([g.target, g.gift || null, g.title || "", Array.isArray(g.steps) ? g.steps : []]);
}

function buildGoal(g) {
  const steps = Array.isArray(g.steps) ? g.steps : [];
  const bar = el("div", { class: "bar" }, el("div", { class: "fill" }),
    ...steps.map((step) => el("span", { class: "mark", dataset: { step: String(step) }, title: full(step) })),
    el("span", { class: "pct" }));
  for (const mark of bar.querySelectorAll(".mark")) {
    mark.style.left = `${(Number(mark.dataset.step) / g.target) * 100}%`;
  }
  return el("div", { class: "item", dataset: { goal: String(g.id), sig: goalSignature(g) } },
    el("div", { class: "row" },
      el("span", { class: "label" },
        el("span", { class: "art", text: g.gift ? giftEmoji(g.gift, 2) : "🎯" }),
        el("span", { class: "title" })),
      el("span", { class: "nums" }, el("b"), el("span", { class: "of" }))),
    bar);
}

function updateGoal(item, g) {
  const pct = Math.min(100, Math.floor((g.progress / g.target) * 100));
  const reached = new Set(Array.isArray(g.steps_reached) ? g.steps_reached : []);
  item.classList.toggle("reached", g.progress >= g.target);
  item.dataset.progress = String(g.progress);
  item.dataset.target = String(g.target);
  item.querySelector(".title").textContent = goalLabel(g);
  item.querySelector(".nums b").textContent = full(g.progress);
  item.querySelector(".nums .of").textContent = ` / ${full(g.target)}`;
  item.querySelector(".fill").style.width = `${pct}%`;
  item.querySelector(".pct").textContent = `${pct}%`;
  for (const mark of item.querySelectorAll(".mark")) {
    const step = Number(mark.dataset.step);
    mark.classList.toggle("hit", reached.has(step) || g.progress >= step);
  }
}

function renderGoals(goals, legacy) {
  const box = $("goal");
  goalsShown = goalList(goals, legacy);
  if (!on("goal") || !goalsShown.length) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  const old = new Map([...box.querySelectorAll(".item")].map((n) => [n.dataset.goal, n]));
  const items = goalsShown.map((g) => {
    const kept = old.get(String(g.id));
    const item = kept && kept.dataset.sig === goalSignature(g) ? kept : buildGoal(g);
    updateGoal(item, g);
    return item;
  });
  const same = items.length === box.children.length && items.every((n, i) => box.children[i] === n);
  if (!same) box.replaceChildren(...items);
  const first = goalsShown[0];
  box.classList.toggle("reached", goalsShown.every((g) => g.progress >= g.target));
  box.dataset.progress = String(first.progress);
  box.dataset.target = String(first.target);
  box.dataset.count = String(goalsShown.length);
}

function celebrateGoal(ev) {
  if (!on("goal")) return;
  const item = [...$("goal").querySelectorAll(".item")].find((n) => n.dataset.goal === String(ev.goal));
  if (!item) return;
  const step = Number.isInteger(ev.step) ? ev.step : null;
  if (step !== null) {
    const mark = [...item.querySelectorAll(".mark")].find((m) => Number(m.dataset.step) === step);
    if (mark) mark.classList.add("hit");
  } else {
    item.classList.add("reached");
    item.querySelector(".title").textContent = "Goal reached!";
  }
  const cheer = el("div", { class: "cheer", dataset: { event: ev.event, step: step === null ? "target" : String(step) } },
    el("span", { class: "art", text: step === null ? "🏆" : "🎉" }),
    step === null ? "Goal reached!" : `Step ${full(step)} reached!`);
  item.append(cheer);
  restartAnimation(item, "celebrate");
  chime(step === null ? 3 : 2);
  setTimeout(() => fadeOut(cheer), 5000);
}

// ---------------------------------------------------------------------------- hype

// A running hype: its level, a progress bar toward the level's target and a
// countdown to its expiry. `hype` (a level reached) and `hype_progress` (at
// most once a second) carry {level, progress, target, expires_at}; the
// countdown runs on this page's clock, offset by the event's ts (the server's
// time when it was built). `hype_ended` shows the final level, then hides it.
let hypeTimer = 0;
let hypeEndsAt = 0;

function hypeCountdown() {
  const box = $("hype");
  const left = Math.max(0, Math.ceil((hypeEndsAt - Date.now()) / 1000));
  const node = box.querySelector(".left");
  if (node) node.textContent = `${left}s`;
  box.dataset.left = String(left);
}

function renderHype(h, ts, levelUp) {
  const box = $("hype");
  if (!on("hype") || !h || !(h.target > 0)) return;
  const level = Number.parseInt(h.level, 10) || 1;
  const pct = Math.min(100, Math.floor((h.progress / h.target) * 100));
  const offset = Number.isFinite(ts) ? ts - Date.now() : 0;
  hypeEndsAt = Number(h.expires_at) - offset;
  box.hidden = false;
  box.classList.remove("ended");
  box.dataset.level = String(level);
  box.dataset.progress = String(h.progress);
  box.replaceChildren(
    el("div", { class: "row" },
      el("span", { class: "label" }, el("span", { class: "art", text: "🔥" }), "Hype ",
        el("b", { class: "lvl", text: `Lv ${level}` })),
      el("span", { class: "left", text: "" })),
    el("div", { class: "bar" }, el("div", { class: "fill" }),
      el("span", { class: "nums", text: `${full(h.progress)} / ${full(h.target)}` })));
  box.querySelector(".fill").style.width = `${pct}%`;
  if (levelUp) { restartAnimation(box, "levelled"); chime(3); }
  hypeCountdown();
  clearInterval(hypeTimer);
  hypeTimer = setInterval(hypeCountdown, 250);
}

function endHype(ev) {
  const box = $("hype");
  clearInterval(hypeTimer);
  if (!on("hype") || box.hidden) return;
  box.classList.add("ended");
  box.dataset.ended = ev.event;
  box.replaceChildren(el("div", { class: "row" },
    el("span", { class: "label" }, el("span", { class: "art", text: "🔥" }),
      "Hype ended at ", el("b", { class: "lvl", text: `Lv ${Number.parseInt(ev.level, 10) || 1}` }))));
  setTimeout(() => { if (box.classList.contains("ended")) { box.hidden = true; box.classList.remove("ended"); } }, 4000);
}

const MEDALS = ["🥇", "🥈", "🥉"];

function renderTop(top) {
  const box = $("top");
  if (!on("top") || !Array.isArray(top) || !top.length) { box.hidden = true; return; }
  box.hidden = false;
  box.replaceChildren(
    el("div", { class: "title", text: "Top gifters" }),
    ...top.slice(0, 3).map((t, i) => el("div", { class: `row rank-${i + 1}`, dataset: { user: t.user } },
      el("span", { class: "medal", text: MEDALS[i] }),
      avatar({ id: t.user, name: t.name }, "sm"),
      el("span", { class: "name", text: t.name }),
      el("span", { class: "coins", text: compact(t.coins) }))));
}

// ---------------------------------------------------------------------------- weekly supporters

// The creator's top supporters this ISO week (widget "weekly", off by default):
// read once over HTTP when the snapshot names the creator, then kept by the
// hub's `weekly_board` events (every few seconds while the room has gifts).
// A read that started before the latest event is dropped (it is older).
const weekly = { creator: "", eventAt: 0, shownAt: 0 };
const WEEKLY_PLACES = 5;

function renderWeekly(board) {
  const box = $("weekly");
  if (!on("weekly") || !board || !Array.isArray(board.entries)) return;
  const places = board.entries.slice(0, WEEKLY_PLACES);
  box.hidden = false;
  box.dataset.at = String(board.at || "");
  box.replaceChildren(
    el("div", { class: "title", text: "Top supporters this week" }),
    ...(places.length ? places.map((t) => el("div", { class: `row rank-${t.rank}`, dataset: { user: t.user, rank: String(t.rank) } },
      el("span", { class: "rank", text: String(t.rank) }),
      avatar({ id: t.user, name: t.name }, "sm"),
      el("span", { class: "name", text: t.name }),
      el("span", { class: "coins", text: compact(t.coins) })))
      : [el("div", { class: "empty", text: "Be the first this week!" })]));
}

async function loadWeekly(creator) {
  if (!on("weekly") || typeof creator !== "string" || !creator) return;
  weekly.creator = creator;
  const started = Date.now();
  try {
    const r = await fetch(`/v1/creators/${encodeURIComponent(creator)}/leaderboard?period=week&limit=${WEEKLY_PLACES}`);
    if (!r.ok) return;
    const board = await r.json();
    if (weekly.eventAt > started) return; // an event came in meanwhile: it is newer
    renderWeekly(board);
  } catch { /* offline: the next weekly_board event fills it */ }
}

function onWeeklyBoard(ev) {
  weekly.eventAt = Date.now();
  renderWeekly(ev);
}

// ---------------------------------------------------------------------------- hidden by a moderator

// A moderator hid a comment or highlight: take down whatever shows it (its pin,
// its chat line). Events are matched by their id, kept on each node's data-event.
function takeDown(id) {
  if (typeof id !== "string" || !id) return;
  if (pins.has(id)) unpin(id);
  if (pinQueue.some((p) => p.ev.event === id)) { pinQueue = pinQueue.filter((p) => p.ev.event !== id); saveNow(); }
  for (const node of document.querySelectorAll(`[data-event="${CSS.escape(id)}"]`)) node.remove();
  window.dispatchEvent(new CustomEvent("gifting:hidden", { detail: { target: id } }));
}

// ---------------------------------------------------------------------------- treasure boxes

// One card per box (data-box): the dropper and coins, a countdown to its opening,
// then to its close with the claims so far, then the closed summary (claimed by
// how many, returned), which fades after a while. Times come from the events
// (opens_at, closes_at: the server's clock); the countdown ticks locally.
const boxes = new Map(); // box id -> {ev, claims: [{user, name, share}], closed}
const BOX_SHOWN_CLOSED_MS = 12000;
const MAX_BOX_CLAIMS_SHOWN = 5;
let boxTimer = null;

function boxCard(id) {
  let node = document.querySelector(`.boxcard[data-box="${CSS.escape(id)}"]`);
  if (!node) {
    node = el("div", { class: "boxcard", dataset: { box: id, state: "waiting" } });
    $("boxes").append(node);
    $("boxes").hidden = false;
  }
  return node;
}

function secondsLeft(ms) {
  return Math.max(0, Math.ceil((ms - Date.now()) / 1000));
}

function renderBox(id) {
  const box = boxes.get(id);
  if (!box) return;
  const { ev } = box;
  const node = boxCard(id);
  const now = Date.now();
  const state = box.closed ? "closed" : box.opened || now >= ev.opens_at ? "open" : "waiting";
  node.dataset.state = state;
  node.dataset.claims = String(box.claims.length);
  let status;
  if (state === "waiting") status = [`Opens in `, el("b", { class: "boxcount", text: `${secondsLeft(ev.opens_at)}s` })];
  else if (state === "open") status = ["Open! ", el("b", { class: "boxcount", text: `${secondsLeft(ev.closes_at)}s` }), ` left · ${box.claims.length}/${ev.winners} claimed`];
  else {
    const c = box.closed;
    status = [el("b", { text: full(c.claimed) }), ` claimed by ${c.claims}`,
      c.returned ? ` · ${full(c.returned)} back to ${ev.sender.name}` : ""];
  }
  node.replaceChildren(
    el("div", { class: "head" },
      el("span", { class: "art", text: state === "closed" ? "🎉" : "🎁" }),
      el("span", { class: "who" }, el("b", { text: ev.sender.name }), senderMarks(ev.sender), " dropped a treasure box"),
      el("span", { class: "coins", text: full(ev.coins) })),
    el("div", { class: "boxstate" }, ...status),
    el("div", { class: "claims" }, ...box.claims.slice(-MAX_BOX_CLAIMS_SHOWN).map((c) =>
      el("span", { class: "claim", dataset: { user: String(c.user) } },
        avatar({ id: String(c.user), name: String(c.name) }, "sm"),
        el("span", { class: "name", text: String(c.name) }),
        el("span", { class: "share", text: `+${full(c.share)}` })))));
}

function tickBoxes() {
  for (const [id, box] of boxes) if (!box.closed) renderBox(id);
  if (![...boxes.values()].some((b) => !b.closed)) { clearInterval(boxTimer); boxTimer = null; }
}

function onBox(ev) {
  if (!on("boxes") || typeof ev.box !== "string") return;
  let box = boxes.get(ev.box);
  if (ev.kind === "box_dropped") {
    if (box) return;
    box = { ev, claims: [], opened: false, closed: null };
    boxes.set(ev.box, box);
    if (!boxTimer) boxTimer = setInterval(tickBoxes, 250);
    markShown(ev);
  } else if (!box) {
    return; // dropped before this overlay joined: nothing to draw it on
  } else if (ev.kind === "box_opened") {
    box.opened = true; // the server's word, whatever this machine's clock says
  } else if (ev.kind === "box_claimed") {
    box.opened = true;
    box.claims.push({ user: ev.user, name: ev.name, share: ev.share });
  } else if (ev.kind === "box_closed") {
    box.closed = { claimed: ev.claimed, claims: ev.claims, returned: ev.returned };
    forgetBoxLater(ev.box);
  }
  renderBox(ev.box);
  saveSoon(); // a reload draws the card again (a box's events before the cursor do not come back)
}

function forgetBoxLater(id) {
  setTimeout(() => {
    boxes.delete(id);
    saveSoon();
    fadeOut(document.querySelector(`.boxcard[data-box="${CSS.escape(id)}"]`));
    if (!boxes.size) setTimeout(() => { if (!boxes.size) $("boxes").hidden = true; }, 500);
  }, BOX_SHOWN_CLOSED_MS);
}

// The boxes a reload interrupted, as they were saved (their later events follow from the cursor).
function restoreBoxes(list) {
  if (!on("boxes") || !Array.isArray(list)) return;
  for (const b of list) {
    if (!b || !b.ev || typeof b.ev.box !== "string" || !b.ev.sender || boxes.has(b.ev.box)) continue;
    boxes.set(b.ev.box, {
      ev: b.ev, claims: Array.isArray(b.claims) ? b.claims : [], opened: Boolean(b.opened),
      closed: b.closed && typeof b.closed === "object" ? b.closed : null,
    });
    renderBox(b.ev.box);
    if (b.closed) forgetBoxLater(b.ev.box);
    else if (!boxTimer) boxTimer = setInterval(tickBoxes, 250);
  }
}

// ---------------------------------------------------------------------------- events

function handle(ev) {
  if (!ev || typeof ev.seq !== "number") return;
  debug.received += 1;
  if (ev.seq <= state.seq || seenIds.has(ev.event)) return;
  state.seq = ev.seq;
  state.cursor = ev.cursor;
  remember(ev.event);
  try {
    show(ev);
  } finally {
    // The cursor is stored in the same task as the event is shown, so a
    // reload can neither skip nor repeat it.
    saveCursor();
    saveSoon();
  }
}

function show(ev) {
  switch (ev.kind) {
    case "gift": {
      const big = ev.gift.tier >= 3 && on("big");
      if (big) enqueueBig(ev);
      else if (on("alerts") && showAlert(ev)) { markShown(ev); chime(ev.gift.tier); }
      break;
    }
    case "streak_end":
      onStreakEnd(ev);
      break;
    case "highlight":
      if (on("comments")) pinComment(ev, Date.now() + (ev.highlight.pin_ms || 30000)); // shown when pinned
      chime(2);
      break;
    case "comment":
      if (on("chat")) showChat(ev);
      break;
    case "effect":
      if (on("effects")) { playEffect(ev); markShown(ev); }
      break;
    case "goal":
      renderGoals(ev.goals, ev.goal);
      break;
    case "goal_reached":
      celebrateGoal(ev);
      break;
    case "hype":
      renderHype(ev, ev.ts, true);
      break;
    case "hype_progress":
      renderHype(ev, ev.ts, false);
      break;
    case "hype_ended":
      endHype(ev);
      break;
    case "leaderboard":
      renderTop(ev.top);
      break;
    case "weekly_board":
      onWeeklyBoard(ev);
      break;
    case "stream_ended":
      streamEnded();
      break;
    case "hidden":
      takeDown(ev.target);
      break;
    case "level_up":
      if (on("alerts")) showLevelUp(ev);
      break;
    case "box_dropped":
    case "box_opened":
    case "box_claimed":
    case "box_closed":
      onBox(ev);
      break;
    default:
      break; // a kind from a newer server
  }
}

function applySnapshot(snap) {
  // A snapshot is the room's position now: what follows comes after it.
  state.seq = snap.seq || 0;
  state.cursor = snap.cursor || (state.seq === 0 ? "0-0_0" : null);
  saveNow();
  renderGoals(snap.goals, snap.goal);
  if (snap.hype) renderHype(snap.hype, snap.hype.ts, false);
  renderTop(snap.top);
  if (snap.creator) loadWeekly(snap.creator.id);
  stage.dataset.title = snap.title || "";
  if (snap.live === false) streamEnded();
}

// ---------------------------------------------------------------------------- connection

let socket = null;
let attempt = 0;
let stopped = false;
let lastFrameAt = 0;
let downSince = performance.now();
let reconnectTimer = 0;
let fatal = "";

function wsUrl() {
  const u = new URL("/v1/ws/overlay", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  u.searchParams.set("stream", stream);
  u.searchParams.set("key", overlayKey);
  if (state.cursor) u.searchParams.set("since", state.cursor);
  return u.toString();
}

function connect() {
  clearTimeout(reconnectTimer);
  if (stopped) return;
  let ws;
  try {
    ws = new WebSocket(wsUrl(), "gifting.json.v1");
  } catch {
    scheduleReconnect();
    return;
  }
  socket = ws;
  let sentSince = Boolean(state.cursor);
  let refusal = "";
  ws.onmessage = (e) => {
    if (socket !== ws) return;
    if (!lastFrameAt || downSince) { attempt = 0; downSince = 0; fatal = ""; debug.connected = true; updateStatus(); }
    lastFrameAt = performance.now();
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.op === "event") handle(msg);
    else if (msg.op === "batch") (msg.events || []).forEach(handle);
    else if (msg.op === "snapshot") applySnapshot(msg);
    else if (msg.op === "error") {
      if (msg.code === "cursor_expired") { /* a snapshot follows */ }
      else if (msg.code === "rate_limited") { /* too many connections for now: 1013, back off */ }
      else if (msg.code === "bad_request" && sentSince) { state.cursor = null; sentSince = false; refusal = "cursor"; }
      else refusal = msg.code || "error";
    }
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    debug.connected = false;
    if (!downSince) downSince = performance.now();
    if (e.code === 1000) { streamEnded(); return; }
    if (refusal === "cursor") { saveNow(); scheduleReconnect(0); return; }
    if (e.code === 1008 || refusal) {
      fatal = !refusal || refusal === "forbidden" || refusal === "unauthorized"
        ? "Overlay key rejected: copy the overlay link again"
        : `Overlay refused (${refusal})`;
      updateStatus();
      scheduleReconnect(30000); // the link may be fixed meanwhile
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect(fixedMs) {
  if (stopped) return;
  const ceiling = Math.min(10000, 500 * 2 ** Math.min(attempt, 10));
  const ms = fixedMs ?? ceiling * (0.5 + Math.random() / 2);
  attempt += 1;
  debug.reconnects += 1;
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, ms);
}

function forceReconnect() {
  const ws = socket;
  socket = null;
  debug.connected = false;
  if (!downSince) downSince = performance.now();
  if (ws) {
    ws.onclose = null;
    ws.onmessage = null;
    try { ws.close(); } catch { /* already gone */ }
  }
  scheduleReconnect(0);
}

// Keepalive: browsers cannot see WebSocket pings, so ask for a pong now and
// then; a connection silent for too long is dead even if TCP has not noticed.
setInterval(() => {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (performance.now() - lastFrameAt > 45000) forceReconnect();
  else socket.send(JSON.stringify({ op: "ping" }));
}, 15000);
setInterval(updateStatus, 1000);

function updateStatus() {
  const box = $("status");
  let text = "";
  if (fatal) text = fatal;
  else if (!stopped && downSince && performance.now() - downSince > 3000) text = "Reconnecting…";
  if (!text || !options.status) { box.hidden = true; return; }
  if (!box.hidden && box.textContent === text) return;
  box.hidden = false;
  box.classList.toggle("error", Boolean(fatal));
  box.replaceChildren(el("span", { class: "dot" }), el("span", { text }));
}

function streamEnded() {
  stopped = true;
  clearTimeout(reconnectTimer);
  clearTimeout(saveTimer);
  window.removeEventListener("pagehide", saveNow);
  try {
    sessionStorage.removeItem(STORE);
    sessionStorage.removeItem(CURSOR_STORE);
  } catch { /* nothing to clear */ }
  if (stage.querySelector(".ended")) return;
  const card = el("div", { class: "ended" }, el("b", { text: "Stream ended" }), el("span", { text: "Thanks for watching 💜" }));
  stage.append(card);
  setTimeout(() => fadeOut(card, 800), 8000);
}

// ---------------------------------------------------------------------------- start

for (const w of ALL_WIDGETS.concat(["chat"])) stage.classList.toggle(`no-${w}`, !on(w));
$("chat").hidden = !on("chat");
window.addEventListener("pagehide", saveNow);

if (!stream || !overlayKey) {
  fatal = "This overlay link has no stream or key";
  updateStatus();
} else {
  // Resume what a reload interrupted: pinned and waiting comments, queued big gifts.
  for (const p of Array.isArray(saved.pins) ? saved.pins : []) {
    if (p && p.ev && p.ev.event) pinsShown.add(p.ev.event); // shown before the reload
  }
  for (const p of [].concat(saved.pins || [], saved.pinQueue || [])) {
    if (p && p.ev && p.ev.event && p.ev.highlight) pinComment(p.ev, p.until);
  }
  restoreBoxes(saved.boxes);
  playNextBig();
  connect();
}
