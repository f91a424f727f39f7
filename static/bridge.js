// invokeRemote as @forge/bridge defines it, without a build step: the call goes through the bridge
// Forge injects into the frame (globalThis.__bridge), which signs it and sends it to the remote.
// Resolves to {status, headers, body}; body is parsed when it is a JSON string.

export class BridgeUnavailable extends Error {}

export function hasBridge() {
  return Boolean(globalThis.__bridge && typeof globalThis.__bridge.callBridge === "function");
}

// view.theme.enable() of @forge/bridge: the host then sets data-color-mode (light | dark) on <html>,
// which styles.css follows; without it Confluence leaves the panel on the OS theme. Called once, when
// this module loads, before the panel mounts (Forge's advice, so the first paint has the right
// colours). It never stops the panel: a refusal, a missing bridge or no answer in time leaves the OS
// theme in place.
const THEMING_WAIT_MS = 2000;

export async function enableTheming() {
  if (!hasBridge()) {
    return false;
  }
  let timer;
  try {
    const asked = Promise.resolve(globalThis.__bridge.callBridge("enableTheming")).then(() => true);
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

export async function invokeRemote({ path, method = "POST", headers = {}, body } = {}) {
  if (!hasBridge()) {
    throw new BridgeUnavailable("The Forge bridge is missing: open Access Desk from Confluence.");
  }
  let answer = await globalThis.__bridge.callBridge("invoke", {
    path,
    method,
    headers,
    body,
    invokeType: "ui-remote-fetch",
  });
  // Some bridge versions wrap the answer as {success, payload | error}.
  if (answer && typeof answer === "object" && !("status" in answer) && "success" in answer) {
    answer = answer.success ? answer.payload : answer.error;
  }
  answer = answer || {};
  return {
    status: Number(answer.status) || 0,
    headers: answer.headers || {},
    body: parseBody(answer.body),
  };
}

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
