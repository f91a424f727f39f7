// The simulated Confluence admin page: changing who is signed in reloads the panel; the theme picker
// sets data-color-mode on the host page, and on the panel's <html> only once the panel asked for it
// with the bridge's enableTheming (@forge/bridge's view.theme.enable()), as Forge does; the frame is
// sized to its content. Flags the panel raises with the bridge's showFlag (@forge/bridge's showFlag)
// show in the page's own flag group, bottom left of the window, as Confluence shows them.
// window.__forgeHost tells tests what the panel asked for.
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

  function enableTheming(data, source) {
    state.themingRequests += 1;
    themedDocument = panelDocument();
    applyTheme();
    source.postMessage({ type: "forge-host:theming-enabled", id: data.id }, location.origin);
  }

  // ---------------------------------------------------------------- flags (ADS flag group)
  // Newest first, at most MAX_FLAGS; success and info flags with isAutoDismiss go after 8 s, the
  // timer held while the pointer or focus is on the flag (ADS's AutoDismissFlag). Bold flags
  // (appearance) have no dismiss button. The frame hears of every action click and every flag gone.
  var AUTO_DISMISS_MS = 8000;
  var MAX_FLAGS = 5;
  var FLAG_TYPES = ["info", "success", "warning", "error"];
  var SVG = "http://www.w3.org/2000/svg";
  var ICON_PATHS = {
    info: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-9.5a1 1 0 0 0-1 1V16a1 1 0 1 0 2 0v-4.5a1 1 0 0 0-1-1ZM12 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 9Z",
    success: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm3.7-10.7a1 1 0 0 0-1.4 0L11 12.6l-1.3-1.3a1 1 0 1 0-1.4 1.4l2 2a1 1 0 0 0 1.4 0l4-4a1 1 0 0 0 0-1.4Z",
    warning: "M13.5 4.9 20.6 17.5A1.7 1.7 0 0 1 19.1 20H4.9a1.7 1.7 0 0 1-1.5-2.5l7.1-12.6a1.7 1.7 0 0 1 3 0ZM12 8a1 1 0 0 0-1 1v4.5a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9.5A1.25 1.25 0 1 0 12 15a1.25 1.25 0 0 0 0 2.5Z",
    error: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-12a1 1 0 0 0-1 1v4a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 17Z",
    close: "M12 10.6 7.8 6.4a1 1 0 0 0-1.4 1.4l4.2 4.2-4.2 4.2a1 1 0 1 0 1.4 1.4l4.2-4.2 4.2 4.2a1 1 0 0 0 1.4-1.4L13.4 12l4.2-4.2a1 1 0 0 0-1.4-1.4L12 10.6Z",
  };
  var flags = []; // newest first: {id, el, source, timer}
  var flagCount = 0;
  state.flagsShown = 0; // showFlag calls answered
  state.flagActions = []; // {id, index} of every action click passed to the frame

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function icon(name, className) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", className);
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICON_PATHS[name]);
    path.setAttribute("fill", "currentColor");
    path.setAttribute("fill-rule", "evenodd");
    svg.appendChild(path);
    return svg;
  }

  function flagGroup() {
    var group = document.getElementById("host-flags");
    if (!group) {
      group = el("section", "host-flags");
      group.id = "host-flags";
      group.setAttribute("aria-labelledby", "host-flags-label");
      var label = el("h2", "host-visually-hidden", "Flag notifications");
      label.id = "host-flags-label";
      group.appendChild(label);
      document.body.appendChild(group);
    }
    return group;
  }

  function findFlag(id) {
    for (var i = 0; i < flags.length; i += 1) {
      if (flags[i].id === id) {
        return flags[i];
      }
    }
    return null;
  }

  // Takes a flag off the page; tells its frame unless the frame closed it.
  function removeFlag(shown, tellFrame) {
    var at = flags.indexOf(shown);
    if (at < 0) {
      return false;
    }
    flags.splice(at, 1);
    clearTimeout(shown.timer);
    shown.el.remove();
    if (!flags.length) {
      var group = document.getElementById("host-flags");
      if (group) {
        group.remove();
      }
    }
    if (tellFrame) {
      try {
        shown.source.postMessage({ type: "forge-host:flag-dismissed", flagId: shown.id }, location.origin);
      } catch (err) {
        // The frame is gone.
      }
    }
    return true;
  }

  function armAutoDismiss(shown) {
    clearTimeout(shown.timer);
    shown.timer = setTimeout(function () {
      removeFlag(shown, true);
    }, AUTO_DISMISS_MS);
  }

  function renderFlag(spec, source) {
    var type = FLAG_TYPES.indexOf(spec.type) >= 0 ? spec.type : "info";
    var bold = FLAG_TYPES.indexOf(spec.appearance) >= 0 ? spec.appearance : "";
    flagCount += 1;
    var titleId = "host-flag-title-" + flagCount;
    var root = el("div", "host-flag host-flag-" + (bold ? "bold host-flag-bold-" + bold : "normal"));
    root.setAttribute("role", "alert");
    root.setAttribute("aria-labelledby", titleId);
    root.dataset.flagId = spec.id;
    root.dataset.type = type;
    var header = el("div", "host-flag-header");
    header.appendChild(icon(type, "host-flag-icon host-flag-icon-" + type));
    var title = el("span", "host-flag-title", spec.title || "");
    title.id = titleId;
    header.appendChild(title);
    var shown = { id: spec.id, el: root, source: source, timer: null };
    if (!bold) {
      var dismiss = el("button", "host-flag-dismiss");
      dismiss.type = "button";
      dismiss.setAttribute("aria-label", "Dismiss");
      dismiss.appendChild(icon("close", "host-flag-dismiss-icon"));
      dismiss.addEventListener("click", function () {
        removeFlag(shown, true);
      });
      header.appendChild(dismiss);
    }
    root.appendChild(header);
    if (spec.description) {
      root.appendChild(el("div", "host-flag-description", spec.description));
    }
    var actions = Array.isArray(spec.actions) ? spec.actions : [];
    if (actions.length) {
      var row = el("div", "host-flag-actions");
      actions.forEach(function (action, index) {
        var button = el("button", "host-flag-action", String((action && action.text) || ""));
        button.type = "button";
        button.addEventListener("click", function () {
          state.flagActions.push({ id: spec.id, index: index });
          source.postMessage({ type: "forge-host:flag-action", flagId: spec.id, index: index }, location.origin);
        });
        row.appendChild(button);
      });
      root.appendChild(row);
    }
    if (spec.isAutoDismiss) {
      // Held while the pointer or the focus is on the flag, as ADS's AutoDismissFlag does.
      root.addEventListener("mouseenter", function () {
        clearTimeout(shown.timer);
      });
      root.addEventListener("mouseleave", function () {
        if (!root.contains(document.activeElement)) {
          armAutoDismiss(shown);
        }
      });
      root.addEventListener("focusin", function () {
        clearTimeout(shown.timer);
      });
      root.addEventListener("focusout", function (event) {
        if (!root.contains(event.relatedTarget) && !root.matches(":hover")) {
          armAutoDismiss(shown);
        }
      });
    }
    return shown;
  }

  function showFlag(data, source) {
    var spec = data.flag;
    if (!spec || typeof spec.id !== "string" || !spec.id) {
      source.postMessage({ type: "forge-host:refused", id: data.id, message: "showFlag needs an id." }, location.origin);
      return;
    }
    var same = findFlag(spec.id);
    if (same) {
      removeFlag(same, false); // the same id again: the new one takes its place
    }
    var shown = renderFlag(spec, source);
    var group = flagGroup();
    group.insertBefore(shown.el, group.querySelector(".host-flag"));
    flags.unshift(shown);
    while (flags.length > MAX_FLAGS) {
      removeFlag(flags[flags.length - 1], true);
    }
    if (spec.isAutoDismiss) {
      armAutoDismiss(shown);
    }
    state.flagsShown += 1;
    source.postMessage({ type: "forge-host:flag-shown", id: data.id }, location.origin);
  }

  function closeFlag(data, source) {
    var shown = findFlag(String(data.flagId));
    var closed = Boolean(shown) && shown.source === source && removeFlag(shown, false);
    source.postMessage({ type: "forge-host:flag-closed", id: data.id, closed: closed }, location.origin);
  }

  var HANDLERS = {
    "forge-bridge:enable-theming": enableTheming,
    "forge-bridge:show-flag": showFlag,
    "forge-bridge:close-flag": closeFlag,
  };

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== location.origin || !frame.contentWindow || event.source !== frame.contentWindow) {
      return;
    }
    var handler = data && typeof data.type === "string" && Object.prototype.hasOwnProperty.call(HANDLERS, data.type)
      ? HANDLERS[data.type]
      : null;
    if (handler) {
      handler(data, event.source);
    }
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
