// Shared look of gifts and people for the overlay and the demo page.
// Emoji render with the system's colour font (OBS on Windows: Segoe UI Emoji;
// Linux: Noto Color Emoji), so nothing is downloaded.

const GIFT_EMOJI = {
  rose: "🌹", tiktok: "🎵", gg: "🎮", ice_cream_cone: "🍦", finger_heart: "🫰",
  rosa: "💐", perfume: "🧴", doughnut: "🍩", cap: "🧢", hand_hearts: "🫶",
  confetti: "🎊", sunglasses: "🕶️", corgi: "🐕", money_gun: "💸", swan: "🦢",
  train: "🚂", galaxy: "💫", fireworks: "💥", whale_diving: "🐋", sports_car: "🏎️",
  interstellar: "🚀", falcon: "🦅", lion: "🦁", universe: "🪐",
};

const EFFECT_EMOJI = {
  confetti: "🎊", spotlight: "🔦", heart_storm: "💖", fireworks: "💥",
};

const TIER_EMOJI = ["🎁", "🎁", "💝", "🏆", "👑"];

/** The emoji of a gift id (a tier-based default for gifts this file does not know). */
export function giftEmoji(id, tier = 1) {
  return GIFT_EMOJI[id] || TIER_EMOJI[Math.min(Math.max(tier, 0), 4)];
}

/** The emoji of an effect id. */
export function effectEmoji(id) {
  return EFFECT_EMOJI[id] || "✨";
}

/** A stable hue (0-359) for a user id: the same viewer always gets the same colour. */
export function userHue(id) {
  let h = 2166136261;
  for (const ch of String(id)) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 16777619);
  }
  return Math.abs(h) % 360;
}

/** The first letter of a display name, for avatar circles. */
export function initial(name) {
  const first = Array.from(String(name || "?").trim())[0] || "?";
  return first.toUpperCase();
}

/** 1234 -> "1,234"; 12345 -> "12.3K"; 30000 -> "30K"; 1234567 -> "1.2M". */
export function compact(n) {
  const v = Number(n) || 0;
  const short = (x, digits) => x.toFixed(digits).replace(/\.0$/, "");
  if (v >= 1e6) return `${short(v / 1e6, v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e4) return `${short(v / 1e3, v >= 1e5 ? 0 : 1)}K`;
  return v.toLocaleString("en-US");
}

/** el("div", {class: "x", dataset: {a: 1}}, child, "text") — text is always a text node. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A round avatar with the user's initial, coloured by their id. */
export function avatar(sender, extraClass = "") {
  const node = el("span", { class: `avatar ${extraClass}`.trim(), text: initial(sender.name) });
  node.style.setProperty("--hue", String(userHue(sender.id)));
  return node;
}
