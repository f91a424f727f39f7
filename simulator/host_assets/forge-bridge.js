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
// callBridge('showFlag', {id, title, description, type, appearance, actions: [{text, onClick}],
// isAutoDismiss}) is @forge/bridge's showFlag: the host page shows the flag in its flag group (bottom
// left of the window, over the page), and a click on an action runs that action's onClick here.
// callBridge('closeFlag', {id}) is the flag's close(): it resolves to whether the flag was still open.
(function () {
  "use strict";

  var HOST_TIMEOUT_MS = 5000;
  var asks = 0;
  var flagActions = Object.create(null); // flag id -> the onClick of each of its actions

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

  // Like Forge's bridge, a message to the host page ({type, id, ...fields}), answered by one with the
  // same id: of type `done` (resolves to it), else a refusal carrying its message (rejects).
  async function ask(type, fields, done, what) {
    if (window.parent === window) {
      throw new Error("No host page to answer " + what + ".");
    }
    await hostReady();
    asks += 1;
    var id = what + "-" + asks;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        window.removeEventListener("message", onAnswer);
        reject(new Error("The host page did not answer " + what + "."));
      }, HOST_TIMEOUT_MS);
      function onAnswer(event) {
        var data = event.data;
        if (event.source !== window.parent || event.origin !== location.origin || !data || data.id !== id) {
          return;
        }
        clearTimeout(timer);
        window.removeEventListener("message", onAnswer);
        if (data.type === done) {
          resolve(data);
        } else {
          reject(new Error(data.message || "The host page refused " + what + "."));
        }
      }
      window.addEventListener("message", onAnswer);
      window.parent.postMessage(Object.assign({ type: type, id: id }, fields), location.origin);
    });
  }

  // The host answers once the theme is applied.
  async function enableTheming() {
    await ask("forge-bridge:enable-theming", {}, "forge-host:theming-enabled", "enableTheming");
    return undefined;
  }

  // showFlag: the host page shows the flag in its flag group; what crosses is plain data (the actions'
  // texts), the onClick functions stay here and run when the host says an action was clicked.
  // Resolves once the flag is on the host page.
  async function showFlag(input) {
    if (!input || (typeof input.id !== "string" && typeof input.id !== "number") || input.id === "") {
      throw new Error("showFlag needs an id.");
    }
    var actions = Array.isArray(input.actions) ? input.actions : [];
    var key = String(input.id);
    var flag = {
      id: key,
      title: input.title === undefined ? "" : String(input.title),
      description: input.description === undefined ? "" : String(input.description),
      type: input.type || "info",
      appearance: input.appearance || "",
      isAutoDismiss: Boolean(input.isAutoDismiss),
      actions: actions.map(function (action) {
        return { text: String((action && action.text) || "") };
      }),
    };
    flagActions[key] = actions.map(function (action) {
      return action && typeof action.onClick === "function" ? action.onClick : null;
    });
    try {
      await ask("forge-bridge:show-flag", { flag: flag }, "forge-host:flag-shown", "showFlag");
    } catch (err) {
      delete flagActions[key];
      throw err;
    }
    return undefined;
  }

  // closeFlag: resolves to whether a flag with that id was still open.
  async function closeFlag(input) {
    var key = String(input && input.id);
    var answer = await ask("forge-bridge:close-flag", { flagId: key }, "forge-host:flag-closed", "closeFlag");
    delete flagActions[key];
    return Boolean(answer.closed);
  }

  // What the host page says about flags it shows: an action was clicked, a flag went away.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.source !== window.parent || event.origin !== location.origin || !data) {
      return;
    }
    var key = String(data.flagId);
    if (data.type === "forge-host:flag-action" && flagActions[key]) {
      var onClick = flagActions[key][data.index];
      if (onClick) {
        onClick();
      }
    } else if (data.type === "forge-host:flag-dismissed") {
      delete flagActions[key];
    }
  });

  globalThis.__bridge = {
    callBridge: function (name, input) {
      if (name === "invoke") {
        return invoke(input);
      }
      if (name === "enableTheming") {
        return enableTheming();
      }
      if (name === "showFlag") {
        return showFlag(input);
      }
      if (name === "closeFlag") {
        return closeFlag(input);
      }
      return Promise.reject(new Error("The simulated bridge does not implement " + name + "."));
    },
  };
})();
