// @ts-check
// Avatars: the profile picture when the panel can load it, else initials on a colour of the account.

import { h } from "./dom.js";

const HUES = ["#0c66e4", "#6e5dc6", "#1f845a", "#a54800", "#ae2e24", "#206a83"];

/** @param {unknown} name */
export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

/**
 * @param {unknown} name
 * @param {unknown} seed
 */
function initialsAvatar(name, seed) {
  let hash = 0;
  for (const c of String(seed || name || "")) {
    hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  }
  const el = h("span", { class: "avatar avatar-initials", "aria-hidden": "true", text: initials(name) });
  el.style.backgroundColor = HUES[hash % HUES.length];
  return el;
}

// profilePicture.path may be relative to the site, which the panel cannot reach: initials then.
/** @param {import("./lookup.js").User} user */
export function avatar(user) {
  const name = user.displayName || user.publicName || user.accountId;
  const path = user.profilePicture && user.profilePicture.path;
  const fallback = initialsAvatar(name, user.accountId);
  if (!path || !/^https?:\/\//i.test(path) || (user.profilePicture && user.profilePicture.isDefault)) {
    return fallback;
  }
  const img = h("img", { class: "avatar", src: path, alt: "", width: 24, height: 24, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(fallback), { once: true });
  return img;
}
