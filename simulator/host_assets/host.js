// The simulated Confluence admin page: changing who is signed in reloads the panel; the theme picker
// sets data-color-mode on the panel's <html>, as Forge does when theming is enabled; the frame is
// sized to its content.
(function () {
  "use strict";
  var account = document.getElementById("host-account");
  var theme = document.getElementById("host-theme");
  var frame = document.getElementById("host-panel");

  function applyTheme() {
    if (theme.value) {
      document.documentElement.setAttribute("data-color-mode", theme.value);
    } else {
      document.documentElement.removeAttribute("data-color-mode");
    }
    try {
      var root = frame.contentDocument && frame.contentDocument.documentElement;
      if (!root) {
        return;
      }
      if (theme.value) {
        root.setAttribute("data-color-mode", theme.value);
      } else {
        root.removeAttribute("data-color-mode");
      }
    } catch (err) {
      // Not reachable yet.
    }
  }

  // Like Confluence does for Custom UI, the frame grows with its content.
  var observer = null;
  function fitToContent() {
    try {
      var root = frame.contentDocument && frame.contentDocument.documentElement;
      if (!root || typeof ResizeObserver === "undefined") {
        return;
      }
      if (observer) {
        observer.disconnect();
      }
      observer = new ResizeObserver(function () {
        frame.style.height = Math.max(600, root.scrollHeight) + "px";
      });
      observer.observe(root);
    } catch (err) {
      // Not reachable yet.
    }
  }

  account.addEventListener("change", function () {
    frame.src = "/panel/";
  });
  theme.addEventListener("change", applyTheme);
  frame.addEventListener("load", applyTheme);
  frame.addEventListener("load", fitToContent);
  applyTheme();
})();
