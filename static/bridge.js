// invokeRemote as @forge/bridge defines it, without a build step: the call goes through the bridge
// Forge injects into the frame (globalThis.__bridge), which signs it and sends it to the remote.
// Resolves to {status, headers, body}; body is parsed when it is a JSON string.

export class BridgeUnavailable extends Error {}

export function hasBridge() {
  return Boolean(globalThis.__bridge && typeof globalThis.__bridge.callBridge === "function");
}

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
