// The simulated Confluence admin page: changing who is signed in reloads the panel; the theme picker
// sets data-color-mode on the host page, and on the panel's <html> only once the panel asked for it
// with the bridge's enableTheming (@forge/bridge's view.theme.enable()), as Forge does; the frame is
// sized to its content. window.__forgeHost tells tests what the panel asked for.
(function () {
  "use strict";
  var account = document.getElementById("host-account");
  var theme = document.getElementById("host-theme");
  var frame = document.getElementById("host-panel");
  var systemDark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var themedDocument = null; // the panel document that called enableTheming

  var state = {
    themingRequests: 0, // enableTheming calls, over every panel document this page has shown
    themingEnabled: function () {
      return Boolean(themedDocument) && panelDocument() === themedDocument;
    },
  };
  window.__forgeHost = state;

  function panelDocument() {
    try {
      return frame.contentDocument;
    } catch (err) {
      return null; // not reachable yet
    }
  }

  // "Follow system" is still a definite mode for the panel: Confluence resolves it to light or dark.
  function colorMode() {
    if (theme.value) {
      return theme.value;
    }
    return systemDark && systemDark.matches ? "dark" : "light";
  }

  function applyTheme() {
    if (theme.value) {
      document.documentElement.setAttribute("data-color-mode", theme.value);
    } else {
      document.documentElement.removeAttribute("data-color-mode");
    }
    if (!state.themingEnabled()) {
      return; // a panel that did not ask keeps its own (OS) theme
    }
    var root = themedDocument.documentElement;
    if (root) {
      root.setAttribute("data-color-mode", colorMode());
    }
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== location.origin || !frame.contentWindow || event.source !== frame.contentWindow) {
      return;
    }
    if (!data || data.type !== "forge-bridge:enable-theming") {
      return;
    }
    state.themingRequests += 1;
    themedDocument = panelDocument();
    applyTheme();
    event.source.postMessage({ type: "forge-host:theming-enabled", id: data.id }, location.origin);
  });

  // Like Confluence does for Custom UI, the frame grows with its content.
  var observer = null;
  function fitToContent() {
    try {
      // The body, not <html>: the root is never shorter than the frame, so the frame could only grow.
      var body = frame.contentDocument && frame.contentDocument.body;
      if (!body || typeof ResizeObserver === "undefined") {
        return;
      }
      if (observer) {
        observer.disconnect();
      }
      observer = new ResizeObserver(function () {
        frame.style.height = Math.max(600, Math.ceil(body.getBoundingClientRect().height)) + "px";
      });
      observer.observe(body);
    } catch (err) {
      // Not reachable yet.
    }
  }

  account.addEventListener("change", function () {
    frame.src = "/panel/";
  });
  theme.addEventListener("change", applyTheme);
  if (systemDark && typeof systemDark.addEventListener === "function") {
    systemDark.addEventListener("change", applyTheme);
  }
  frame.addEventListener("load", applyTheme);
  frame.addEventListener("load", fitToContent);
  applyTheme();
})();
