// The simulated Forge bridge: what Confluence injects into a Custom UI frame as globalThis.__bridge.
// callBridge('invoke', {path, method, headers, body, invokeType: 'ui-remote-fetch'}) sends the call to
// the simulated Forge (/_host/invoke), which signs it as the account picked in the host page and
// forwards it to the remote. The answer is {status, headers, body}, as @forge/bridge's invokeRemote gets.
(function () {
  "use strict";

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
    return answer;
  }

  globalThis.__bridge = {
    callBridge: function (name, input) {
      if (name === "invoke") {
        return invoke(input);
      }
      return Promise.reject(new Error("The simulated bridge does not implement " + name + "."));
    },
  };
})();
