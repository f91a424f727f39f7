// The simulated Forge bridge: what Confluence injects into a Custom UI frame as globalThis.__bridge,
// answering the messages of the pinned @forge/bridge build the panel loads (static/vendor/).
// callBridge('invoke', {path, method, headers, body, invokeType: 'ui-remote-fetch'}) is invokeRemote:
// the call goes to the simulated Forge (/_host/invoke), which signs it as the account picked in the
// host page and forwards it to the remote. The answer is @forge/bridge's envelope: {success: true,
// payload} for a 2xx, else {success: false, error}, each {status, headers, body} with every header
// value a list (@forge/bridge's RemoteInvokeResponse type; it joins them with ","). A call the host
// could not make at all (bad input, remote unreachable) rejects.
// callBridge('enableTheming') is @forge/bridge's view.theme.enable(): it asks the host page (host.js)
// to put its theme on this frame's <html> as data-color-mode, which the host does only from then on.
(function () {
  "use strict";

  var THEMING_TIMEOUT_MS = 5000;
  var asks = 0;

  function signedInAccount() {
    try {
      var picker = window.parent.document.getElementById("host-account");
      if (picker && picker.value) {
        return picker.value;
      }
    } catch (err) {
      // A parent on another origin: no account to read.
    }
    return "";
  }

  async function invoke(input) {
    if (!input || input.invokeType !== "ui-remote-fetch") {
      throw new Error("The simulated bridge only supports invokeRemote (ui-remote-fetch).");
    }
    var response = await fetch("/_host/invoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        path: input.path,
        method: input.method || "POST",
        headers: input.headers || {},
        body: input.body === undefined ? null : input.body,
        accountId: signedInAccount(),
      }),
    });
    var answer = await response.json();
    if (!response.ok) {
      throw new Error(answer.message || "The Forge bridge call failed (" + response.status + ").");
    }
    var relayed = { status: answer.status, headers: listed(answer.headers), body: answer.body };
    if (answer.status >= 200 && answer.status < 300) {
      return { success: true, payload: relayed };
    }
    return { success: false, error: relayed };
  }

  function listed(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      out[name] = Array.isArray(value) ? value : [String(value)];
    });
    return out;
  }

  // The host page's script is deferred: a panel that loads first waits for it.
  function hostReady() {
    try {
      var doc = window.parent.document;
      if (window.parent.__forgeHost || doc.readyState === "complete") {
        return Promise.resolve();
      }
      return new Promise(function (resolve) {
        doc.addEventListener("DOMContentLoaded", resolve, { once: true });
        window.parent.addEventListener("load", resolve, { once: true });
      });
    } catch (err) {
      return Promise.resolve(); // a parent on another origin
    }
  }

  // Like Forge's bridge, a message to the host page; the host answers once the theme is applied.
  async function enableTheming() {
    if (window.parent === window) {
      throw new Error("No host page to take the theme from.");
    }
    await hostReady();
    asks += 1;
    var id = "enableTheming-" + asks;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        window.removeEventListener("message", onAnswer);
        reject(new Error("The host page did not answer enableTheming."));
      }, THEMING_TIMEOUT_MS);
      function onAnswer(event) {
        var data = event.data;
        if (event.source !== window.parent || event.origin !== location.origin || !data || data.id !== id) {
          return;
        }
        clearTimeout(timer);
        window.removeEventListener("message", onAnswer);
        if (data.type === "forge-host:theming-enabled") {
          resolve(undefined);
        } else {
          reject(new Error(data.message || "The host page refused enableTheming."));
        }
      }
      window.addEventListener("message", onAnswer);
      window.parent.postMessage({ type: "forge-bridge:enable-theming", id: id }, location.origin);
    });
  }

  globalThis.__bridge = {
    callBridge: function (name, input) {
      if (name === "invoke") {
        return invoke(input);
      }
      if (name === "enableTheming") {
        return enableTheming();
      }
      return Promise.reject(new Error("The simulated bridge does not implement " + name + "."));
    },
  };
})();
