// @ts-check
// The panel's door to Forge: @forge/bridge's own invokeRemote, view.theme and showFlag, from the pinned build in
// vendor/forge-bridge.js (made by scripts/build-bridge.sh; docs/panel.md says how to update it). The
// messages to the host are @forge/bridge's business, not ours.
//
// Forge injects globalThis.__bridge into the frame before the panel's scripts (the simulated host in
// ./dev does the same), and @forge/bridge reads it as soon as it loads, throwing when it is missing.
// So the build is imported only when the bridge is there; without it every call fails with
// BridgeUnavailable, which the panel shows as a message instead of never starting.

export class BridgeUnavailable extends Error {}

const MISSING = "The Forge bridge is missing: open Access Desk from Confluence.";

/** @type {typeof import("./vendor/forge-bridge.js") | null} */
let forge = null;
/** @type {any} what the import threw (anything can be thrown) */
let failure = null;
if (/** @type {{__bridge?: unknown}} */ (globalThis).__bridge) { // set by the host, see above
  try {
    forge = await import("./vendor/forge-bridge.js");
  } catch (err) {
    failure = err;
  }
}

function bridge() {
  if (forge) {
    return forge;
  }
  const why = failure ? `The Forge bridge could not start: ${failure.message || failure}` : MISSING;
  throw new BridgeUnavailable(why);
}

// view.theme.enable(): the host then sets data-color-mode (light | dark) on <html>, which styles.css
// follows; without it Confluence leaves the panel on the OS theme. Called once, when this module
// loads, before the panel mounts (Forge's advice, so the first paint has the right colours). It never
// stops the panel: a refusal, a missing bridge or no answer in time leaves the OS theme in place.
const THEMING_WAIT_MS = 2000;

export async function enableTheming() {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  try {
    const asked = Promise.resolve(bridge().view.theme.enable()).then(() => true);
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), THEMING_WAIT_MS);
    });
    return await Promise.race([asked, late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

await enableTheming();

// @forge/bridge's showFlag: a flag the host page shows in its own flag group, over the whole page (a
// note at the bottom of a frame that grows with its content could be far below the visible area).
// options are showFlag's: {id, title, description, type, actions: [{text, onClick}], isAutoDismiss}.
// Answers the flag's {close()}, or null when there is no bridge to show it (the caller shows its own).
// A host that fails later, after the call, only leaves no flag: @forge/bridge keeps that promise.
/**
 * @param {{id: string, title: string, description?: string, type?: string, isAutoDismiss?: boolean,
 *   actions?: {text: string, onClick: () => void}[]}} options
 * @returns {{close(): Promise<unknown>} | null}
 */
export function showFlag(options) {
  if (!forge || typeof forge.showFlag !== "function") {
    return null;
  }
  try {
    return forge.showFlag(options);
  } catch {
    return null;
  }
}

// @forge/bridge's invokeRemote, answered as {status, headers, body}: body parsed when it is a JSON
// string (Forge's docs do not say whether it hands over the text or the parsed value).
/**
 * @param {{path: string, method?: string, headers?: Record<string, string>, body?: unknown}} request
 * @returns {Promise<{status: number, headers: Record<string, string>, body: any}>} body: the JSON
 *   answer as parsed (any: its shape is the resolver's, docs/contract.md), else the text or null
 */
export async function invokeRemote({ path, method = "POST", headers = {}, body }) {
  const answer = (await bridge().invokeRemote({ path, method, headers, body })) || {};
  return {
    status: Number(answer.status) || 0,
    headers: answer.headers || {},
    body: parseBody(answer.body),
  };
}

/** @param {unknown} body */
function parseBody(body) {
  if (typeof body !== "string") {
    return body ?? null;
  }
  if (body.trim() === "") {
    return null;
  }
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}
