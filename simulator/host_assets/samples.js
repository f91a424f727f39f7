// Only in ./dev (the simulated host injects it when the platform has samples on): a "Try with sample
// data" button beside each of the panel's list forms (form[data-entry-kind]), which pastes the seeded
// site's ids or emails (GET /_host/samples) into the list as a person would. The panel's own code has
// no part in it, so it can never show on a real site.
(function () {
  "use strict";
  var lists = null;

  function load() {
    if (!lists) {
      lists = fetch("/_host/samples", { credentials: "same-origin" }).then(function (answer) {
        if (!answer.ok) {
          throw new Error("no samples");
        }
        return answer.json();
      });
    }
    return lists;
  }

  function offer(form) {
    var actions = form.querySelector(".actions");
    var area = form.querySelector("textarea");
    if (!actions || !area || form.querySelector(".sample-data")) {
      return;
    }
    var kind = form.getAttribute("data-entry-kind");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-default sample-data";
    button.textContent = "Try with sample data";
    button.title = "./dev only: the simulated site's ids and emails";
    button.addEventListener("click", function () {
      load().then(function (samples) {
        area.value = samples[kind] || "";
        area.dispatchEvent(new Event("input", { bubbles: true }));
        area.focus();
      });
    });
    actions.appendChild(button);
  }

  function scan() {
    var forms = document.querySelectorAll("form[data-entry-kind]");
    for (var i = 0; i < forms.length; i += 1) {
      offer(forms[i]);
    }
  }

  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  scan();
})();
